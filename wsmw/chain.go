package wsmw

import (
	"context"
	"fmt"
	"slices"

	"github.com/nexio-go/nexio/wsroute"
)

// Middleware wraps a handler with logic that runs before the handshake:
// it may inspect the request, refuse the connection (Close before Accept
// so a browser sees the code, or Reject over HTTP), pass values to the
// handler through ctx, observe the connection (see wsroute's
// Conn.OnAccept, Conn.OnReceive, Conn.OnEnd), or call next.
//
// A middleware that neither calls next nor refuses leaves the handshake
// unanswered: wsroute answers 403.
type Middleware func(next wsroute.HandlerFunc) wsroute.HandlerFunc

// Chain composes middleware into one. They run in the order given: the
// first runs first, and its next is the second. An empty Chain returns
// the handler unchanged. Chain panics if one of mws is nil.
//
// Each middleware's outer function (the one taking next) runs when the
// chain is applied to a handler, once per route, not per connection.
func Chain(mws ...Middleware) Middleware {
	for i, mw := range mws {
		if mw == nil {
			panic(fmt.Sprintf("wsmw: Chain: middleware %d of %d is nil", i, len(mws)))
		}
	}
	mws = slices.Clone(mws)
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		for i := len(mws) - 1; i >= 0; i-- {
			next = mws[i](next)
		}
		return next
	}
}

// Func makes a Middleware from a function that receives next, the shape
// of Python's Nexio middleware (async def mw(ws, next_middleware)):
//
//	auth := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
//		token := c.Header().Get("Authorization")
//		if token == "" || token != "valid_token" {
//			return c.Close(4001, "Unauthorized")
//		}
//		return next(ctx, c)
//	})
//
// Pass a derived ctx to next to hand values to the handler.
func Func(f func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error) Middleware {
	if f == nil {
		panic("wsmw: Func called with a nil function")
	}
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			return f(ctx, c, next)
		}
	}
}
