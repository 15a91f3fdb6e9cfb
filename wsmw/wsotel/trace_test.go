package wsotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsotel"
	"github.com/nexio-go/nexio/wsroute"
)

// tracing is a tracer provider that keeps ended spans in memory.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

func serve(t *testing.T, tp trace.TracerProvider, handlers map[string]wsroute.HandlerFunc) *httptest.Server {
	t.Helper()
	mw := wsotel.Trace(&wsotel.Options{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	mux := http.NewServeMux()
	for p, fn := range handlers {
		mux.Handle(p, wsroute.Handle(wsmw.Chain(mw)(fn)))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// oneSpan waits for exactly one ended span and returns it.
func oneSpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	testutil.Eventually(t, func() bool { return len(exp.GetSpans()) > 0 }, "no span ended")
	spans := exp.GetSpans()
	testutil.Equal(t, len(spans), 1)
	return spans[0]
}

// TestTraceConnection: a connection opened with a traceparent header gets
// a span in that trace, with the handshake as an event, the close code,
// side and duration as attributes, and the handler's own spans as
// children; the span ends only when the connection does.
func TestTraceConnection(t *testing.T) {
	t.Parallel()
	tp, exp := tracing(t)
	srv := serve(t, tp, map[string]wsroute.HandlerFunc{
		"/ws/rooms/{room}": func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			for {
				msg, err := c.ReceiveText(ctx)
				if err != nil {
					return err
				}
				_, child := tp.Tracer("app").Start(ctx, "handle message")
				child.End()
				if err := c.SendText(ctx, "Echo: "+msg); err != nil {
					return err
				}
			}
		},
	})
	ctx := testutil.Ctx(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	c, _, err := websocket.Dial(ctx, wsURL(srv, "/ws/rooms/lobby"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}},
	})
	testutil.NoErr(t, err)
	defer c.CloseNow()
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: hi")
	// The handler's span has ended; the connection's has not.
	testutil.Eventually(t, func() bool { return len(exp.GetSpans()) == 1 }, "the handler's span did not end")
	testutil.Equal(t, exp.GetSpans()[0].Name, "handle message")
	child := exp.GetSpans()[0]
	exp.Reset()

	testutil.NoErr(t, c.Close(4000, "bye"))
	s := oneSpan(t, exp)
	testutil.Equal(t, s.Name, "WebSocket /ws/rooms/{room}")
	testutil.Equal(t, s.SpanKind, trace.SpanKindServer)
	testutil.Equal(t, s.SpanContext.TraceID().String(), traceID)
	testutil.Equal(t, s.Parent.SpanID().String(), parentID)
	testutil.Check(t, s.Parent.IsRemote(), "the parent is not the remote span of the traceparent header")
	testutil.Equal(t, child.Parent.SpanID(), s.SpanContext.SpanID())
	testutil.Equal(t, len(s.Events), 1)
	testutil.Equal(t, s.Events[0].Name, "websocket.accepted")
	a := attrs(s)
	testutil.Equal(t, a["http.route"].AsString(), "/ws/rooms/{room}")
	testutil.Equal(t, a["url.path"].AsString(), "/ws/rooms/lobby")
	testutil.Equal(t, a["http.response.status_code"].AsInt64(), 101)
	testutil.Equal(t, a[wsotel.CloseCodeKey].AsInt64(), 4000)
	testutil.Equal(t, a[wsotel.CloseReasonKey].AsString(), "bye")
	testutil.Equal(t, a[wsotel.ClosedByKey].AsString(), "client")
	testutil.Equal(t, a[wsotel.MessagesInKey].AsInt64(), 1)
	testutil.Equal(t, a[wsotel.MessagesOutKey].AsInt64(), 1)
	d := a[wsotel.DurationKey].AsFloat64()
	testutil.Check(t, d > 0 && d <= s.EndTime.Sub(s.StartTime).Seconds()+1e-3,
		"duration %v s, span lasted %v", d, s.EndTime.Sub(s.StartTime))
	testutil.Equal(t, s.Status.Code, codes.Unset)
}

// TestTraceOutcomes: refusals and server errors end the span with their
// status or code; 5xx and 1011 are errors.
func TestTraceOutcomes(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		fn         wsroute.HandlerFunc
		wantStatus int64
		wantCode   int64 // 0: no close code attribute
		wantError  bool
	}{
		{
			name:       "rejected over HTTP",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return c.Reject(401, "no") },
			wantStatus: 401,
		},
		{
			name:       "closed before accept",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return c.Close(4001, "Unauthorized") },
			wantStatus: 101, wantCode: 4001,
		},
		{
			name:       "failed before accept",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return errors.New("boom") },
			wantStatus: 500, wantError: true,
		},
		{
			name: "closed with 1011",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return &wsroute.CloseError{Code: 1011, Reason: "Something went wrong!"}
			},
			wantStatus: 101, wantCode: 1011, wantError: true,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tp, exp := tracing(t)
			srv := serve(t, tp, map[string]wsroute.HandlerFunc{"/ws": tc.fn})
			ctx := testutil.Ctx(t)
			c, _, err := websocket.Dial(ctx, wsURL(srv, "/ws"), nil)
			if err == nil {
				for err == nil {
					_, _, err = c.Read(ctx)
				}
				c.CloseNow()
			}
			s := oneSpan(t, exp)
			a := attrs(s)
			testutil.Equal(t, a["http.response.status_code"].AsInt64(), tc.wantStatus)
			testutil.Equal(t, a[wsotel.CloseCodeKey].AsInt64(), tc.wantCode)
			testutil.Equal(t, s.Status.Code == codes.Error, tc.wantError)
			// Without a traceparent, the connection starts its own trace.
			testutil.Check(t, !s.Parent.IsValid(), "span has parent %v without a traceparent header", s.Parent)
		})
	}
}
