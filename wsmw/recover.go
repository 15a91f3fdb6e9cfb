package wsmw

import (
	"context"
	"runtime/debug"

	"github.com/nexio-go/nexio/wsroute"
)

// Recover is a Middleware that turns a panic in the middleware and
// handler below it into a returned *PanicError carrying the value and
// the stack.
//
// wsroute recovers panics anyway (1011 "internal error" to the client,
// or 500 before the handshake, logged with the stack), so Recover is for
// stacks that want recovery at a chosen point: middleware above it see
// the panic as an ordinary error on their way out instead of being
// unwound, and code between them can react to it. The *PanicError then
// ends the connection like any other error: 1011 "internal error", its
// text (value and stack) logged by wsroute, never sent to the client.
//
//	wsmw.Chain(wsmw.Logger(logger), metrics, wsmw.Recover, wsmw.Auth(opts))
func Recover(next wsroute.HandlerFunc) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = &PanicError{Value: p, Stack: debug.Stack()}
			}
		}()
		return next(ctx, c)
	}
}
