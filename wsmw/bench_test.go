package wsmw_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// The benchmarks put a route with a 5-middleware chain next to the bare
// route: per connection (a handshake through the chain, then a close)
// and per message (an echo round trip on an open connection). Times and
// allocations are the whole process's, client included; the difference
// between the pairs is the chain's.

// builtins is a realistic stack of five: every built-in that acts per
// connection or per message, with limits the benchmark never reaches.
func builtins() []wsmw.Middleware {
	return []wsmw.Middleware{
		wsmw.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		wsmw.Recover,
		wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 1e9, Burst: 1e9}),
		wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}),
		wsmw.MessageRate(wsmw.MessageRateOptions{PerSecond: 1e9, Burst: 1e9}),
	}
}

func noops() []wsmw.Middleware {
	mws := make([]wsmw.Middleware, 5)
	for i := range mws {
		mws[i] = wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
			return next(ctx, c)
		})
	}
	return mws
}

var benchChains = []struct {
	name string
	mws  func() []wsmw.Middleware
}{
	{"bare", func() []wsmw.Middleware { return nil }},
	{"5-noop", noops},
	{"5-builtin", builtins},
}

var authHeader = &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer valid_token"}}}

func BenchmarkChainPerConnection(b *testing.B) {
	for _, bc := range benchChains {
		b.Run(bc.name, func(b *testing.B) {
			l := slog.New(slog.NewTextHandler(io.Discard, nil))
			srv := serve(b, &wsroute.Options{Logger: l}, func(ctx context.Context, c *wsroute.Conn) error {
				return c.Accept(ctx)
			}, bc.mws()...)
			url := wsURL(srv, "/ws")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, _, err := websocket.Dial(ctx, url, authHeader)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					b.Fatal(err)
				}
				c.CloseNow()
			}
		})
	}
}

func BenchmarkChainPerMessage(b *testing.B) {
	payload := []byte("0123456789012345678901234567890123456789012345678901234567890123") // 64 B
	for _, bc := range benchChains {
		b.Run(bc.name, func(b *testing.B) {
			srv := serve(b, nil, func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				for {
					data, err := c.ReceiveBytes(ctx)
					if err != nil {
						return err
					}
					if err := c.SendBytes(ctx, data); err != nil {
						return err
					}
				}
			}, bc.mws()...)
			c := dial(b, srv, "/ws", authHeader)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for range b.N {
				if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

// BenchmarkChainCall is the chain alone: five Func middleware around a
// handler, called once (what each connection pays before its handler).
func BenchmarkChainCall(b *testing.B) {
	h := wsmw.Chain(noops()...)(func(ctx context.Context, c *wsroute.Conn) error { return nil })
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		h(ctx, nil)
	}
}
