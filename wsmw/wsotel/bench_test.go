package wsotel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsotel"
	"github.com/nexio-go/nexio/wsroute"
)

// The benchmarks put a traced route (the SDK's tracer, every span
// sampled and handed to an exporter that drops it) next to the bare
// route, per connection and per message, as wsmetrics' do.

func benchServer(b *testing.B, traced bool, fn wsroute.HandlerFunc) *httptest.Server {
	b.Helper()
	h := fn
	if traced {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		b.Cleanup(func() { tp.Shutdown(context.Background()) })
		h = wsmw.Chain(wsotel.Trace(&wsotel.Options{TracerProvider: tp, Propagator: propagation.TraceContext{}}))(fn)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(h))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv
}

var benchCases = []struct {
	name   string
	traced bool
}{
	{"bare", false},
	{"traced", true},
}

func BenchmarkHandshake(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			srv := benchServer(b, bc.traced, func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) })
			url := wsURL(srv, "/ws")
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

func BenchmarkEcho(b *testing.B) {
	payload := []byte("0123456789012345678901234567890123456789012345678901234567890123") // 64 B
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			srv := benchServer(b, bc.traced, func(ctx context.Context, c *wsroute.Conn) error {
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
			c, _, err := websocket.Dial(ctx, wsURL(srv, "/ws"), nil)
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
