package wsotel_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsotel"
	"github.com/nexio-go/nexio/wsroute"
)

// A route traced into an in-memory exporter: one span per connection,
// ended when the connection is.
func Example() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	otel.SetTextMapPropagator(propagation.TraceContext{})

	mux := http.NewServeMux()
	mux.Handle("/ws/user/{id}", wsroute.Handle(wsmw.Chain(wsotel.Trace(&wsotel.Options{TracerProvider: tp}))(
		func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			return c.SendText(ctx, "Welcome, User "+c.Param("id")+"!")
		})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/user/42", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	for err == nil {
		_, _, err = c.Read(ctx)
	}
	for len(exp.GetSpans()) == 0 {
		time.Sleep(time.Millisecond)
	}
	s := exp.GetSpans()[0]
	fmt.Println(s.Name)
	fmt.Println(s.Events[0].Name)
	for _, kv := range s.Attributes {
		if kv.Key == wsotel.CloseCodeKey || kv.Key == wsotel.ClosedByKey {
			fmt.Println(kv.Key, kv.Value.Emit())
		}
	}
	// Output:
	// WebSocket /ws/user/{id}
	// websocket.accepted
	// websocket.close.code 1000
	// websocket.closed_by server
}
