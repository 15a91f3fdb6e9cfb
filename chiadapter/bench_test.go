package chiadapter_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/nexio-go/nexio/chiadapter"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// BenchmarkHandshake compares a handshake through a chiadapter route,
// whose stack of five is looked up per connection (an atomic load of
// the built chain), with the same chain built by hand and mounted on chi
// directly.
func BenchmarkHandshake(b *testing.B) {
	accept := func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) }
	stack := func() []wsmw.Middleware {
		mws := make([]wsmw.Middleware, 5)
		for i := range mws {
			mws[i] = wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				return next(ctx, c)
			})
		}
		return mws
	}
	mounts := []struct {
		name  string
		mount func(r chi.Router, opts *wsroute.Options)
	}{
		{"chi-direct", func(r chi.Router, opts *wsroute.Options) {
			r.Handle("/ws/{id}", opts.Handle(wsmw.Chain(stack()...)(accept)))
		}},
		{"chiadapter", func(r chi.Router, opts *wsroute.Options) {
			ws := chiadapter.New(r, opts)
			ws.Use(stack()...)
			ws.Handle("/ws/{id}", accept)
		}},
	}
	for _, m := range mounts {
		b.Run(m.name, func(b *testing.B) {
			opts, _ := testOptions()
			r := chi.NewRouter()
			m.mount(r, opts)
			srv := start(b, r)
			url := wsURL(srv, "/ws/1")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{}})
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
