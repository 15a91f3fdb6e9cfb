package wsmw

import (
	"context"
	"net/http"
	"sync"

	"github.com/nexio-go/nexio/wsroute"
)

// MaxConnsOptions configures MaxConns. Set Total, PerIP or both.
type MaxConnsOptions struct {
	// Total caps the connections open at once through this middleware,
	// across all clients. Defaults to 0: no total cap.
	Total int

	// PerIP caps the connections open at once per client (per key, with
	// Key). Defaults to 0: no per-client cap.
	PerIP int

	// Key returns what a client is counted under.
	// Defaults to IPKey: the client IP, IPv6 grouped by /64.
	Key func(c *wsroute.Conn) string

	// RejectHTTP refuses with HTTP 503 Service Unavailable instead of
	// accepting the WebSocket and closing it with 1013 "try again later".
	// Browsers cannot read an HTTP refusal. Defaults to false: close 1013.
	RejectHTTP bool
}

// MaxConns caps the connections open at once, in total and per client.
// A connection holds its place from the moment it reaches MaxConns (so
// handshakes in progress count; wsroute's HandshakeTimeout bounds them)
// until the rest of the chain returns, or, for a connection the handler
// detached (wsroute.Conn.Detach), until it ends. One over a cap is
// accepted and closed with 1013 "try again later" (or answered 503 with
// opts.RejectHTTP); the rest of the chain does not run, and the chain
// returns an error wrapping ErrTooManyConns.
//
// The per-client table holds only clients with connections open, so it
// is bounded by the connections themselves.
//
//	wsmw.MaxConns(wsmw.MaxConnsOptions{Total: 10000, PerIP: 20})
//
// MaxConns panics if opts sets neither cap, or a negative one.
func MaxConns(opts MaxConnsOptions) Middleware {
	return newConnLimiter(opts).middleware
}

type connLimiter struct {
	o   MaxConnsOptions
	ref refusal

	mu    sync.Mutex
	total int
	perIP map[string]int // only keys with connections open
}

func newConnLimiter(opts MaxConnsOptions) *connLimiter {
	o := opts
	if o.Total < 0 || o.PerIP < 0 || (o.Total == 0 && o.PerIP == 0) {
		panic("wsmw: MaxConnsOptions: set Total, PerIP or both, to positive values")
	}
	if o.Key == nil {
		o.Key = IPKey
	}
	return &connLimiter{
		o: o,
		ref: refusal{
			rejectHTTP: o.RejectHTTP,
			status:     http.StatusServiceUnavailable,
			code:       wsroute.StatusTryAgainLater,
			reason:     "try again later",
		},
		perIP: make(map[string]int),
	}
}

func (l *connLimiter) middleware(next wsroute.HandlerFunc) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) error {
		key := ""
		if l.o.PerIP > 0 {
			key = l.o.Key(c)
		}
		if !l.acquire(key) {
			return refuse(c, l.ref, ErrTooManyConns)
		}
		held := true
		defer func() {
			if held {
				l.release(key)
			}
		}()
		err := next(ctx, c)
		if err == nil && c.Detached() {
			// The connection outlives the chain (wsroute.Conn.Detach):
			// its place is held until it ends.
			held = false
			c.OnEnd(func(wsroute.ConnEnd) { l.release(key) })
		}
		return err
	}
}

func (l *connLimiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.o.Total > 0 && l.total >= l.o.Total {
		return false
	}
	if l.o.PerIP > 0 {
		if l.perIP[key] >= l.o.PerIP {
			return false
		}
		l.perIP[key]++
	}
	l.total++
	return true
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.o.PerIP > 0 {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key)
		}
	}
}

// counts returns the open total and the size of the per-client table.
func (l *connLimiter) counts() (total, keys int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.perIP)
}
