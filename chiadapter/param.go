package chiadapter

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/nexio-go/nexio/wsroute"
)

// Param returns the route parameter name of c's request, as chi matched
// it (chi.URLParam), URL-decoded: "/ws/user/al%20ice" gives "al ice".
func Param(c *wsroute.Conn, name string) string {
	return decoded(c.Request(), chi.URLParam(c.Request(), name))
}

// decoded undoes the escaping chi leaves in parameters: chi matches the
// raw path when the request has one (it has escapes such as %2F that
// the decoded path would lose), and the decoded path otherwise.
func decoded(r *http.Request, v string) string {
	if r.URL.RawPath == "" {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// decodeParams makes Conn.Param (r.PathValue, which chi fills with what
// it matched) agree with Param.
func decodeParams(r *http.Request) {
	if r.URL.RawPath == "" {
		return
	}
	if rctx := chi.RouteContext(r.Context()); rctx != nil {
		for i, k := range rctx.URLParams.Keys {
			r.SetPathValue(k, decoded(r, rctx.URLParams.Values[i]))
		}
	}
}

// ClientIP returns the client IP that one of chi's ClientIPFrom*
// middleware (ClientIPFromHeader, ClientIPFromXFF, ...)
// stored in r's context, or "" if none ran. New makes it the routes'
// wsroute.Options.ClientIP unless one is set, so Conn.ClientIP, and the
// rate limits and logs built on it, follow those middleware.
func ClientIP(r *http.Request) string {
	return middleware.GetClientIP(r.Context())
}
