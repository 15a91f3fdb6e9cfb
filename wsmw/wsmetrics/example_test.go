package wsmetrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
	"github.com/nexio-go/nexio/wsroute"
)

// A server with metrics on its WebSocket route and its hub, scraped
// after one echo.
func Example() {
	reg := prometheus.NewRegistry()
	m := wsmetrics.Connections(nil)
	q := wsmetrics.NewQueueLength("rooms", nil)
	h := hub.New(&hub.Options{OnEnqueue: q.OnEnqueue()})
	defer h.Shutdown(context.Background())
	reg.MustRegister(m, q, wsmetrics.HubCollector("rooms", h, nil))

	mux := http.NewServeMux()
	mux.Handle("/ws/echo", wsroute.Handle(wsmw.Chain(m.Middleware())(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err
		}
		return c.SendText(ctx, "Echo: "+msg)
	})))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	c.Read(ctx)
	// The server counts a message once its write returns, which may be
	// after the client has it: closing, which the server answers after
	// its handler returned, makes the scrape see the echo counted.
	c.Close(websocket.StatusNormalClosure, "")

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "nexio_ws_messages_") || strings.HasPrefix(line, "nexio_ws_handshakes_total{") {
			fmt.Println(line)
		}
	}
	// Output:
	// nexio_ws_handshakes_total{code="",outcome="accepted",route="/ws/echo",status="101"} 1
	// nexio_ws_messages_in_total{route="/ws/echo"} 1
	// nexio_ws_messages_out_total{route="/ws/echo"} 1
}
