package benchutil

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// The middleware benchmarks put a route with the middleware under test
// next to the bare route: per connection (Handshake: a handshake then a
// close) and per message (Echo: an echo round trip on an open
// connection). Each runs two sub-benchmarks, "bare" and the given name.
// Times are the whole process's, client included; the difference between
// the pair is the middleware's. Both report cpu-ns/op, the process's CPU
// time per operation.

// NewMiddleware builds the middleware under test for one sub-benchmark;
// it may register cleanups on b.
type NewMiddleware func(b *testing.B) wsmw.Middleware

// Handshake benchmarks connections: each operation dials, reads the
// server's normal close and closes.
func Handshake(b *testing.B, name string, mw NewMiddleware) {
	for _, bc := range cases(name, mw) {
		b.Run(bc.name, func(b *testing.B) {
			srv := server(b, bc.mw, func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) })
			url := wsURL(srv)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := testutil.CPUTime()
			for range b.N {
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					b.Fatal(err)
				}
				c.CloseNow()
			}
			b.ReportMetric(float64(testutil.CPUTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// Echo benchmarks messages: each operation writes 64 bytes on one open
// connection and reads the server's echo.
func Echo(b *testing.B, name string, mw NewMiddleware) {
	payload := []byte("0123456789012345678901234567890123456789012345678901234567890123") // 64 B
	for _, bc := range cases(name, mw) {
		b.Run(bc.name, func(b *testing.B) {
			srv := server(b, bc.mw, func(ctx context.Context, c *wsroute.Conn) error {
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
			})
			ctx := context.Background()
			c, _, err := websocket.Dial(ctx, wsURL(srv), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			cpu := testutil.CPUTime()
			for range b.N {
				if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(testutil.CPUTime()-cpu)/float64(b.N), "cpu-ns/op")
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

type mwCase struct {
	name string
	mw   NewMiddleware // nil: the bare route
}

func cases(name string, mw NewMiddleware) []mwCase {
	return []mwCase{{"bare", nil}, {name, mw}}
}

// server serves fn at /ws, wrapped in the middleware mw builds unless mw
// is nil.
func server(b *testing.B, mw NewMiddleware, fn wsroute.HandlerFunc) *httptest.Server {
	b.Helper()
	h := fn
	if mw != nil {
		h = wsmw.Chain(mw(b))(fn)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(h))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}
