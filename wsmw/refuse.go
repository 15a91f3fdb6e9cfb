package wsmw

import (
	"math"
	"net/netip"
	"strconv"

	"github.com/nexio-go/nexio/wsroute"
)

// refusal is how a built-in middleware turns a connection away.
type refusal struct {
	rejectHTTP bool
	status     int // with rejectHTTP
	code       wsroute.StatusCode
	reason     string
}

// refuse turns c away as r says and returns err, so outer middleware see
// why. By default it accepts and closes with a code, which a browser can
// read, unlike an HTTP status.
func refuse(c *wsroute.Conn, r refusal, err error) error {
	if r.rejectHTTP {
		c.Reject(r.status, r.reason)
		return err
	}
	echoOffered(c)
	c.Close(r.code, r.reason)
	return err
}

// echoOffered makes sure the handshake that carries a refusal echoes a
// subprotocol when the client offered some: a browser that offered
// subprotocols fails a handshake that picks none, and would then see 1006
// instead of the refusal's code. The route's own Options.Subprotocols
// still win if one of them was offered. For a connection that is closed
// at once, echoing any offered protocol is harmless.
func echoOffered(c *wsroute.Conn) {
	h := c.ResponseHeader()
	if h.Get("Sec-WebSocket-Protocol") != "" {
		return
	}
	if offered := c.Subprotocols(); len(offered) > 0 {
		h.Set("Sec-WebSocket-Protocol", offered[0])
	}
}

// IPKey is the key RateLimit and MaxConns count a client under by
// default: its IP address ([wsroute.Conn.ClientIP]; behind a proxy, set
// wsroute's Options.ClientIP, which package chiadapter does for chi's
// ClientIPFrom* middleware), with IPv6 addresses reduced to their /64
// network, since one client usually holds a whole /64 and could
// otherwise hop addresses to escape a per-IP limit.
func IPKey(c *wsroute.Conn) string {
	ip := c.ClientIP()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a.Is4() || a.Is4In6() {
		if a.Is4In6() {
			return a.Unmap().String()
		}
		return ip
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// retryAfter formats a wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfter(seconds float64) string {
	n := int64(math.Ceil(seconds))
	return strconv.FormatInt(max(n, 1), 10)
}
