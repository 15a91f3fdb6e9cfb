package wsroute_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
	r.Use(middleware.RequestID, middleware.RealIP, middleware.Logger, middleware.Recoverer)
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
	ctx := tctx(t)
	_, got, err := c.Read(ctx)
	noErr(t, err)
	equal(t, string(got), "Welcome, User 42!")
	_, reqID, err := c.Read(ctx)
	noErr(t, err)
	check(t, len(reqID) > 0, "request ID from chi's middleware did not reach the handler's context")
	equal(t, <-ips, "203.0.113.9")
	noErr(t, c.Write(ctx, websocket.MessageText, []byte("x")))
	_, got, err = c.Read(ctx)
	noErr(t, err)
	equal(t, string(got), "Echo: x")
	c.Close(websocket.StatusNormalClosure, "")
}
