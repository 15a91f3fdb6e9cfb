package wsmw

import (
	"context"
	"fmt"
	"math"

	"golang.org/x/time/rate"

	"github.com/nexio-go/nexio/wsroute"
)

// MessageRateOptions configures MessageRate. PerSecond is required.
type MessageRateOptions struct {
	// PerSecond is how many messages per second a connection's client may
	// send, on average (a token bucket, golang.org/x/time/rate). It must
	// be positive. No default.
	PerSecond float64

	// Burst is how many messages the client may send at once, after a
	// pause. Defaults to PerSecond rounded up, at least 1.
	Burst int
}

// MessageRate limits how fast each connection's client may send: the
// message that exceeds the rate is dropped and the connection is closed
// with 1008 "message rate exceeded"; the handler's Receive returns an
// error wrapping ErrMessageRate and wsroute.ErrClosed, which the handler
// returns as usual.
//
// Each connection gets its own bucket (one allocation, when it is
// opened); checking a message takes a lock and the time, and allocates
// nothing. It works through wsroute's Conn.OnReceive, so it counts every
// message the handler receives, whichever Receive method it uses.
//
//	wsmw.MessageRate(wsmw.MessageRateOptions{PerSecond: 10, Burst: 20})
//
// MessageRate panics on invalid options (PerSecond not positive, a
// negative Burst).
func MessageRate(opts MessageRateOptions) Middleware {
	o := opts
	if !(o.PerSecond > 0) || math.IsInf(o.PerSecond, 0) {
		panic(fmt.Sprintf("wsmw: MessageRateOptions.PerSecond must be positive and finite, got %v", o.PerSecond))
	}
	if o.Burst < 0 {
		panic("wsmw: MessageRateOptions.Burst must not be negative")
	}
	if o.Burst == 0 {
		o.Burst = max(1, int(math.Ceil(o.PerSecond)))
	}
	// One error value for every refusal: the hook allocates nothing.
	exceeded := fmt.Errorf("%w: %w", ErrMessageRate,
		&wsroute.CloseError{Code: wsroute.StatusPolicyViolation, Reason: "message rate exceeded"})
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			lim := rate.NewLimiter(rate.Limit(o.PerSecond), o.Burst)
			c.OnReceive(func(wsroute.MessageType, int) error {
				if lim.Allow() {
					return nil
				}
				return exceeded
			})
			return next(ctx, c)
		}
	}
}
