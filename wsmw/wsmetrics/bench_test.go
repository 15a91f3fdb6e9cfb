package wsmetrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexio-go/nexio/internal/benchutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
	"github.com/nexio-go/nexio/wsroute"
)

// BenchmarkHandshake and BenchmarkEcho put the route with the metrics
// middleware ("metrics") next to the bare route ("bare"), as wsmw's chain
// benchmarks do: per connection (a handshake then a close) and per
// message (an echo round trip on an open connection). Times are the whole
// process's, client included; the difference between the pairs is the
// middleware's. docs/benchmarks.md has the numbers and the command.

func metrics(*testing.B) wsmw.Middleware {
	m := wsmetrics.Connections(nil)
	prometheus.NewRegistry().MustRegister(m)
	return m.Middleware()
}

func BenchmarkHandshake(b *testing.B) { benchutil.Handshake(b, "metrics", metrics) }

func BenchmarkEcho(b *testing.B) { benchutil.Echo(b, "metrics", metrics) }

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
