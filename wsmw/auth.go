package wsmw

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nexio-go/nexio/wsroute"
)

// AuthOptions configures Auth. Set exactly one of Token and Validate.
type AuthOptions struct {
	// Token is a static secret: a connection whose token equals it is let
	// through. It is compared in constant time (over SHA-256 digests, so
	// not even its length leaks). Defaults to "": use Validate instead.
	Token string

	// Validate checks a token and returns the identity it stands for (a
	// user ID, claims, ...), which Auth puts into the context given to
	// the rest of the chain: read it with [Identity]. An error refuses the
	// connection and is returned up the chain wrapped with
	// ErrUnauthorized, where Logger logs it, so it must not contain the
	// token; if it wraps a *wsroute.CloseError, the connection is closed
	// with that code and reason instead of 4001 (say, 4003 "Forbidden").
	// ctx is the handler's. Defaults to nil: use Token instead.
	Validate func(ctx context.Context, token string) (identity any, err error)

	// Header is the request header carrying the token, either as
	// "Bearer <token>" or bare. "-" turns it off.
	// Defaults to "Authorization".
	Header string

	// Query is the URL query parameter carrying the token ("?token=").
	// Logger redacts it, but other access logs may not: chi's
	// middleware.Logger, for one, prints the full request URI. "-" turns
	// it off. Defaults to "token".
	Query string

	// Cookie is the cookie carrying the token. Browsers send cookies with
	// handshakes started by other sites too: wsroute's origin check (same
	// origin unless Options.OriginPatterns says otherwise) is what keeps
	// those out, so leave it on (no InsecureSkipVerify) where cookies
	// authenticate. "-" turns the cookie off. Defaults to "token".
	Cookie string

	// Subprotocol is the marker announcing a token in
	// Sec-WebSocket-Protocol, for browsers, which cannot set headers on a
	// WebSocket: the client offers the marker followed by the token,
	//
	//	new WebSocket(url, ["bearer", token])
	//
	// and whenever the marker is offered Auth makes the handshake echo it
	// back, as RFC 6455 requires (a browser fails a handshake that echoes
	// none of its offers, and would miss a 4001 too): it sets the
	// Sec-WebSocket-Protocol response header, which the handler's plain
	// Accept sends when nothing else is negotiated. A subprotocol from
	// the route's Options.Subprotocols, or one given to AcceptWith, takes
	// precedence if the client offered it too. The token itself is never
	// echoed. "-" turns it off. Defaults to "bearer".
	Subprotocol string

	// RejectHTTP refuses with HTTP 401 Unauthorized (and
	// "WWW-Authenticate: Bearer") instead of accepting the WebSocket and
	// closing it with 4001 "Unauthorized". Browsers cannot read an HTTP
	// refusal: scripts only learn that the connection failed.
	// Defaults to false: close 4001.
	RejectHTTP bool
}

// StatusUnauthorized is the close code Auth refuses with (4001), the
// code Python's Nexio uses, so clients written for it work unchanged.
const StatusUnauthorized wsroute.StatusCode = 4001

// authKey is the context key of an authInfo.
type authKey struct{}

// authInfo is what Auth leaves in the context of an accepted connection.
type authInfo struct{ identity any }

// Identity returns the identity that AuthOptions.Validate returned for
// this connection, read from the ctx Auth passed down the chain, and
// whether there is one of type T:
//
//	user, ok := wsmw.Identity[*User](ctx)
//
// With AuthOptions.Token there is no identity; see [Authenticated].
func Identity[T any](ctx context.Context) (T, bool) {
	a, _ := ctx.Value(authKey{}).(*authInfo)
	if a == nil {
		var zero T
		return zero, false
	}
	id, ok := a.identity.(T)
	return id, ok
}

// Authenticated reports whether Auth let this connection through, from
// the ctx Auth passed down the chain.
func Authenticated(ctx context.Context) bool {
	_, ok := ctx.Value(authKey{}).(*authInfo)
	return ok
}

// Auth refuses connections that do not carry a valid token, before the
// handler runs. The token is taken from the first of these that is
// present (and not empty): the Authorization header ("Bearer x" or bare
// "x"), the "token" query parameter, the "token" cookie, the
// Sec-WebSocket-Protocol offer ["bearer", x]. Each source can be renamed
// or turned off in opts. The first token found is the one checked: a
// wrong header token is not rescued by a right cookie.
//
// A refused connection is accepted and closed with 4001 "Unauthorized"
// (or answered 401 with opts.RejectHTTP); the handler does not run, and
// the chain returns an error wrapping ErrUnauthorized. An accepted one
// continues with the identity in ctx (see [Identity], [Authenticated]).
//
// The demo server's shape, a static token accepted from any source:
//
//	wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})
//
// Auth panics if opts sets neither or both of Token and Validate.
func Auth(opts AuthOptions) Middleware {
	o := opts
	if (o.Token == "") == (o.Validate == nil) {
		panic("wsmw: AuthOptions: set exactly one of Token and Validate")
	}
	o.Header = orDefault(o.Header, "Authorization")
	o.Query = orDefault(o.Query, "token")
	o.Cookie = orDefault(o.Cookie, "token")
	o.Subprotocol = orDefault(o.Subprotocol, "bearer")
	validate := o.Validate
	if validate == nil {
		want := sha256.Sum256([]byte(o.Token))
		validate = func(_ context.Context, token string) (any, error) {
			got := sha256.Sum256([]byte(token))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				return nil, errBadToken
			}
			return nil, nil
		}
	}
	ref := refusal{
		rejectHTTP: o.RejectHTTP,
		status:     http.StatusUnauthorized,
		code:       StatusUnauthorized,
		reason:     "Unauthorized",
	}
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			if o.Query != "-" {
				redactQueryParam(c, o.Query)
			}
			token, marker := o.token(c)
			if marker != "" {
				// Echo the marker whatever the outcome: a browser that
				// offered it fails a handshake that echoes nothing, and
				// would miss the 4001 below as well as the accept.
				c.ResponseHeader().Set("Sec-WebSocket-Protocol", marker)
			}
			if token == "" {
				return refuseAuth(c, ref, errNoToken)
			}
			id, err := validate(ctx, token)
			if err != nil {
				return refuseAuth(c, ref, err)
			}
			return next(context.WithValue(ctx, authKey{}, &authInfo{identity: id}), c)
		}
	}
}

var (
	errNoToken  = errors.New("no token")
	errBadToken = errors.New("token does not match")
)

func refuseAuth(c *wsroute.Conn, ref refusal, cause error) error {
	if ref.rejectHTTP {
		c.ResponseHeader().Set("WWW-Authenticate", `Bearer realm="websocket"`)
	}
	var ce *wsroute.CloseError
	if errors.As(cause, &ce) && ce.Code.Sendable() {
		ref.code, ref.reason = ce.Code, ce.Reason
	}
	return refuse(c, ref, fmt.Errorf("%w: %w", ErrUnauthorized, cause))
}

// token finds the connection's token, and the marker subprotocol to
// echo if the client offered it (whichever source the token came from:
// a browser that offered it fails a handshake that does not echo it).
func (o *AuthOptions) token(c *wsroute.Conn) (token, marker string) {
	var fromProto string
	if o.Subprotocol != "-" {
		offered := c.Subprotocols()
		for i, p := range offered {
			if strings.EqualFold(p, o.Subprotocol) {
				marker = p
				if i+1 < len(offered) {
					fromProto = offered[i+1]
				}
				break
			}
		}
	}
	if o.Header != "-" {
		if v := headerToken(c.Header().Get(o.Header)); v != "" {
			return v, marker
		}
	}
	if o.Query != "-" {
		if v := c.Query(o.Query); v != "" {
			return v, marker
		}
	}
	if o.Cookie != "-" {
		if ck, err := c.Request().Cookie(o.Cookie); err == nil && ck.Value != "" {
			return ck.Value, marker
		}
	}
	return fromProto, marker
}

// headerToken reads a token from an Authorization-style value:
// "Bearer x" (the scheme in any case) or a bare "x".
func headerToken(v string) string {
	v = strings.TrimSpace(v)
	if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
		v = strings.TrimSpace(rest)
	}
	return v
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
