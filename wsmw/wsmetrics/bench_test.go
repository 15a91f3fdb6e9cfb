package wsmetrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
	"github.com/nexio-go/nexio/wsroute"
)

// The benchmarks put the route with the metrics middleware next to the
// bare route, as wsmw's chain benchmarks do: per connection (a handshake
// then a close) and per message (an echo round trip on an open
// connection). Times are the whole process's, client included; the
// difference between the pairs is the middleware's. docs/benchmarks.md
// has the numbers and the command.

func benchServer(b *testing.B, withMetrics bool, fn wsroute.HandlerFunc) *httptest.Server {
	b.Helper()
	h := fn
	if withMetrics {
		m := wsmetrics.Connections(nil)
		prometheus.NewRegistry().MustRegister(m)
		h = wsmw.Chain(m.Middleware())(fn)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(h))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv
}

var benchCases = []struct {
	name    string
	metrics bool
}{
	{"bare", false},
	{"metrics", true},
}

func BenchmarkHandshake(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			srv := benchServer(b, bc.metrics, func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) })
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
			srv := benchServer(b, bc.metrics, func(ctx context.Context, c *wsroute.Conn) error {
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
			c := dial(b, srv, "/ws")
			ctx := context.Background()
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

// BenchmarkQueueLength is what hub.Options.OnEnqueue costs per member
// per message with QueueLength plugged in.
func BenchmarkQueueLength(b *testing.B) {
	f := wsmetrics.NewQueueLength("bench", nil).OnEnqueue()
	b.ReportAllocs()
	for i := range b.N {
		f(i & 255)
	}
}

// BenchmarkScrape is one collection of the connection metrics with 1000
// open connections on one route: what each Prometheus scrape costs.
func BenchmarkScrape(b *testing.B) {
	m := wsmetrics.Connections(nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(m.Middleware()(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		select {
		case <-release:
		case <-c.Done():
		}
		return nil
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	for range 1000 {
		dial(b, srv, "/ws")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
