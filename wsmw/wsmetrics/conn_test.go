package wsmetrics_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
	"github.com/nexio-go/nexio/wsroute"
)

// TestConnections drives real connections through every outcome and
// reads the middleware's metrics from a registry, as Prometheus would.
func TestConnections(t *testing.T) {
	t.Parallel()
	m := wsmetrics.Connections(nil)
	reg := registry(t, m)
	handle := func(fn wsroute.HandlerFunc) http.Handler {
		return wsroute.Handle(wsmw.Chain(m.Middleware())(fn))
	}
	srv := mux(t, map[string]http.Handler{
		"/ws/echo": handle(echo),
		"/ws/refuse/{id}": handle(func(ctx context.Context, c *wsroute.Conn) error {
			return c.Reject(http.StatusUnauthorized, "no")
		}),
		"/ws/close": handle(func(ctx context.Context, c *wsroute.Conn) error {
			return c.Close(4001, "Unauthorized")
		}),
		"/ws/error": handle(func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			return &wsroute.CloseError{Code: wsroute.StatusInternalError, Reason: "Something went wrong!"}
		}),
	})
	ctx := testutil.Ctx(t)
	echoRoute := map[string]string{"route": "/ws/echo"}

	// Traffic is counted while the connection is open, not only once it
	// ends: a day-long session shows up in rates at once.
	c := dial(t, srv, "/ws/echo")
	for range 3 {
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("hello")))
		_, got, err := c.Read(ctx)
		testutil.NoErr(t, err)
		testutil.Equal(t, string(got), "Echo: hello")
	}
	testutil.Equal(t, sample(t, reg, "nexio_ws_connections_open", echoRoute), 1)
	testutil.Equal(t, sample(t, reg, "nexio_ws_messages_in_total", echoRoute), 3)
	testutil.Equal(t, sample(t, reg, "nexio_ws_bytes_in_total", echoRoute), 15)
	// A send is counted once its write returns, which may be after the
	// client has read it.
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_ws_messages_out_total", echoRoute) == 3 &&
			sample(t, reg, "nexio_ws_bytes_out_total", echoRoute) == 33
	}, "messages out: %v, want 3", sample(t, reg, "nexio_ws_messages_out_total", echoRoute))
	testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, "bye"))
	testutil.Eventually(t, func() bool { return sample(t, reg, "nexio_ws_connections_open", echoRoute) == 0 },
		"the echo connection is still counted open after the client closed it")
	// Its traffic moved to the ended connections' totals: counters never
	// go down.
	testutil.Equal(t, sample(t, reg, "nexio_ws_messages_in_total", echoRoute), 3)
	testutil.Equal(t, sample(t, reg, "nexio_ws_bytes_out_total", echoRoute), 33)
	testutil.Equal(t, sample(t, reg, "nexio_ws_connection_duration_seconds", echoRoute), 1)

	// Two paths, one pattern: one series.
	for _, path := range []string{"/ws/refuse/a", "/ws/refuse/b"} {
		_, resp, err := websocket.Dial(ctx, wsURL(srv, path), nil)
		testutil.Check(t, err != nil && resp != nil && resp.StatusCode == 401, "dial %s: %v, want 401", path, err)
	}
	testutil.Equal(t, readClose(t, dial(t, srv, "/ws/close")), 4001)
	testutil.Equal(t, readClose(t, dial(t, srv, "/ws/error")), 1011)

	testutil.Eventually(t, func() bool {
		return promtest.CollectAndCount(m, "nexio_ws_handshakes_total") == 4 &&
			promtest.CollectAndCount(m, "nexio_ws_closes_total") == 2 &&
			sample(t, reg, "nexio_ws_connections_open", map[string]string{"route": "/ws/error"}) == 0
	}, "the refusals and the 1011 were not all recorded")
	testutil.NoErr(t, promtest.CollectAndCompare(m, strings.NewReader(`
# HELP nexio_ws_handshakes_total WebSocket handshakes by outcome: accepted; refused over HTTP (status); closed before accept (code).
# TYPE nexio_ws_handshakes_total counter
nexio_ws_handshakes_total{code="",outcome="accepted",route="/ws/echo",status="101"} 1
nexio_ws_handshakes_total{code="",outcome="accepted",route="/ws/error",status="101"} 1
nexio_ws_handshakes_total{code="",outcome="refused",route="/ws/refuse/{id}",status="401"} 2
nexio_ws_handshakes_total{code="4001",outcome="closed_before_accept",route="/ws/close",status="101"} 1
# HELP nexio_ws_closes_total Accepted connections ended, by close code and by the side that closed first (server or client).
# TYPE nexio_ws_closes_total counter
nexio_ws_closes_total{code="1000",route="/ws/echo",side="client"} 1
nexio_ws_closes_total{code="1011",route="/ws/error",side="server"} 1
`), "nexio_ws_handshakes_total", "nexio_ws_closes_total"))
	problems, err := promtest.GatherAndLint(reg)
	testutil.NoErr(t, err)
	testutil.Check(t, len(problems) == 0, "lint: %v", problems)
}

// TestConnectionsClientVanishes: a client that drops its TCP connection
// without a close frame is counted as 1006, closed by the client.
func TestConnectionsClientVanishes(t *testing.T) {
	t.Parallel()
	m := wsmetrics.Connections(nil)
	reg := registry(t, m)
	srv := mux(t, map[string]http.Handler{"/ws/echo": wsroute.Handle(m.Middleware()(echo))})
	c := dial(t, srv, "/ws/echo")
	testutil.Eventually(t, func() bool { return sample(t, reg, "nexio_ws_connections_open", nil) == 1 }, "not counted open")
	c.CloseNow()
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_ws_closes_total", map[string]string{"code": "1006", "side": "client"}) == 1
	}, "the vanished client was not counted as 1006 by the client")
	testutil.Equal(t, sample(t, reg, "nexio_ws_connections_open", nil), 0)
}

// TestConnectionsRouteOption: a custom Route names the series.
func TestConnectionsRouteOption(t *testing.T) {
	t.Parallel()
	m := wsmetrics.Connections(&wsmetrics.Options{Route: func(*wsroute.Conn) string { return "chat" }})
	reg := registry(t, m)
	srv := mux(t, map[string]http.Handler{"/": wsroute.Handle(m.Middleware()(echo))})
	c := dial(t, srv, "/anything/at/all")
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_ws_connections_open", map[string]string{"route": "chat"}) == 1
	}, "the connection is not counted under the route Options.Route named")
	c.Close(websocket.StatusNormalClosure, "")
}

// TestTrafficCountersNeverGoDown scrapes while connections come, talk
// and go: a counter that went down would read as a reset to Prometheus.
func TestTrafficCountersNeverGoDown(t *testing.T) {
	t.Parallel()
	m := wsmetrics.Connections(nil)
	reg := registry(t, m)
	srv := mux(t, map[string]http.Handler{"/ws/echo": wsroute.Handle(m.Middleware()(echo))})
	ctx := testutil.Ctx(t)
	const clients, rounds, msgs = 8, 15, 3
	done := make(chan struct{})
	errs := make(chan error, clients)
	for range clients {
		go func() {
			var err error
			defer func() { errs <- err }()
			for range rounds {
				var c *websocket.Conn
				if c, _, err = websocket.Dial(ctx, wsURL(srv, "/ws/echo"), nil); err != nil {
					return
				}
				for range msgs {
					if err = c.Write(ctx, websocket.MessageText, []byte("x")); err != nil {
						return
					}
					if _, _, err = c.Read(ctx); err != nil {
						return
					}
				}
				c.Close(websocket.StatusNormalClosure, "")
			}
		}()
	}
	go func() {
		for range clients {
			if err := <-errs; err != nil {
				t.Errorf("client: %v", err)
			}
		}
		close(done)
	}()
	last := -1.0 // no series before the first connection
	scrapes := 0
	for running := true; running; scrapes++ {
		select {
		case <-done:
			running = false
		default:
		}
		v := sample(t, reg, "nexio_ws_messages_in_total", nil)
		if v < last {
			t.Errorf("messages_in_total went down from %v to %v", last, v)
		}
		last = v
	}
	if t.Failed() {
		return
	}
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_ws_connections_open", nil) == 0
	}, "connections still counted open")
	testutil.Equal(t, sample(t, reg, "nexio_ws_messages_in_total", nil), clients*rounds*msgs)
	t.Logf("%d scrapes while %d connections came and went", scrapes, clients*rounds)
}
