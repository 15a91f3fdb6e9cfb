package wsroute_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/nexio-go/nexio/wsroute"
)

// TestUpgradeThroughChiMiddleware mounts a route behind chi's common
// middleware, whose ResponseWriter wrappers must not break the upgrade
// (nor the batching beneath it).
func TestUpgradeThroughChiMiddleware(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	// RealIP is deprecated in chi v5.5 (it trusts client-set headers), but
	// it is still common in front of handlers: the upgrade must survive it.
	r.Use(middleware.RequestID, middleware.RealIP, middleware.Logger, middleware.Recoverer) //lint:ignore SA1019 tested on purpose
	ips := make(chan string, 1)
	r.Handle("/ws/user/{user_id}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		ips <- c.ClientIP()
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := c.SendBatch(ctx, []wsroute.Message{
			{Type: wsroute.MessageText, Data: []byte("Welcome, User " + c.Param("user_id") + "!")},
			{Type: wsroute.MessageText, Data: []byte(middleware.GetReqID(ctx))},
		}); err != nil {
			return err
		}
		return echoLoop(ctx, c)
	}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := dial(t, srv, "/ws/user/42", &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {"203.0.113.9"}}})
	ctx := testutil.Ctx(t)
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Welcome, User 42!")
	_, reqID, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Check(t, len(reqID) > 0, "request ID from chi's middleware did not reach the handler's context")
	testutil.Equal(t, <-ips, "203.0.113.9")
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("x")))
	_, got, err = c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: x")
	c.Close(websocket.StatusNormalClosure, "")
}

// TestClientIPFromChiContext: chi's ClientIPFrom* middleware keep the
// address in the context; Options.ClientIP reads it from there.
func TestClientIPFromChiContext(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	r.Use(middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"))
	ips := make(chan string, 1)
	opts := &wsroute.Options{ClientIP: func(r *http.Request) string { return middleware.GetClientIP(r.Context()) }}
	r.Handle("/ws", opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		ips <- c.ClientIP()
		return c.Reject(http.StatusNoContent, "")
	}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {"198.51.100.7"}}})
	testutil.Equal(t, <-ips, "198.51.100.7")
}

// TestConnectionOutlivesChiTimeout: chi's middleware.Timeout puts a
// deadline on the request's context. Once the WebSocket is open that
// deadline is not the connection's: Done, the handler's ctx and OnClose
// follow the connection, which lives on until a side closes it.
func TestConnectionOutlivesChiTimeout(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	r.Use(middleware.Timeout(20 * time.Millisecond))
	report := make(chan string, 1)
	closed := make(chan struct{})
	r.Handle("/ws", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		c.OnClose(func() { close(closed) })
		if err := c.Accept(ctx); err != nil {
			return err
		}
		<-c.Request().Context().Done() // chi's deadline has passed
		select {
		case <-c.Done():
			report <- "Done closed while the connection is open"
		default:
			if ctx.Err() != nil {
				report <- "the handler's ctx ended while the connection is open"
			} else {
				report <- "open"
			}
		}
		return echoLoop(ctx, c)
	}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := dial(t, srv, "/ws", nil)
	testutil.Equal(t, <-report, "open")
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("still there?")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: still there?")
	select {
	case <-closed:
		t.Fatal("OnClose ran while the connection was open")
	default:
	}
	c.Close(websocket.StatusNormalClosure, "")
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("OnClose did not run after the client closed")
	}
}
