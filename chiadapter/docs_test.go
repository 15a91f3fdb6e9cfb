package chiadapter_test

// Python Nexio's middleware examples on chi, translated line by line:
// add_ws_middleware is Use, @app.ws_route is Handle.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/nexio-go/nexio/chiadapter"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

func TestDocsMiddlewareOnChi(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var printed bytes.Buffer
	print := func(a ...any) {
		mu.Lock()
		fmt.Fprintln(&printed, a...)
		mu.Unlock()
	}

	r := chi.NewRouter()
	r.Use(middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"))
	opts, _ := testOptions()
	app := chiadapter.New(r, opts)

	// @app.ws_route("/ws/user/{user_id}")
	// async def user_handler(ws):
	//     user_id = ws.route_params.get("user_id")
	//     await ws.accept()
	//     await ws.send_text(f"Welcome, User {user_id}!")
	app.Handle("/ws/user/{user_id}", func(ctx context.Context, ws *wsroute.Conn) error {
		userID := chiadapter.Param(ws, "user_id")
		if err := ws.Accept(ctx); err != nil {
			return err
		}
		return ws.SendText(ctx, fmt.Sprintf("Welcome, User %s!", userID))
	})

	// async def auth_middleware(ws, next_middleware): ...
	// app.add_ws_middleware(auth_middleware)
	app.Use(wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		token := ws.Header().Get("Authorization")
		if token == "" || token != "valid_token" {
			ws.Close(4001, "Unauthorized")
			return nil
		}
		return nextMiddleware(ctx, ws)
	}))
	// app.add_ws_middleware(log_middleware)
	app.Use(wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		print("WebSocket request:", ws.URL())
		return nextMiddleware(ctx, ws)
	}))
	// app.add_ws_middleware(rate_limit_middleware)
	app.Use(wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		if ws.ClientIP() == "192.168.1.1" {
			ws.Close(4003, "Rate limit exceeded")
			return nil
		}
		return nextMiddleware(ctx, ws)
	}))
	srv := start(t, r)

	header := func(ip, token string) *websocket.DialOptions {
		h := http.Header{"X-Real-Ip": {ip}}
		if token != "" {
			h.Set("Authorization", token)
		}
		return &websocket.DialOptions{HTTPHeader: h}
	}
	testutil.Equal(t, firstMessage(t, srv, "/ws/user/al%20ice", header("10.0.0.1", "valid_token")), "Welcome, User al ice!")

	c := dial(t, srv, "/ws/user/1", header("10.0.0.1", ""))
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4001)
	testutil.Equal(t, reason, "Unauthorized")

	c = dial(t, srv, "/ws/user/1", header("192.168.1.1", "valid_token"))
	code, reason = readClose(t, c)
	testutil.Equal(t, code, 4003)
	testutil.Equal(t, reason, "Rate limit exceeded")

	mu.Lock()
	defer mu.Unlock()
	testutil.Equal(t, printed.String(), "WebSocket request: /ws/user/al%20ice\nWebSocket request: /ws/user/1\n")
}

// TestDemoStack is the demo server's stack: every route logged and rate
// limited per IP (before auth), /ws/secure/echo behind the token.
func TestDemoStack(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	r.Use(middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"))
	opts, _ := testOptions()
	ws := chiadapter.New(r, opts)
	ws.Use(wsmw.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}))
	ws.Handle("/ws/echo", echo)
	ws.With(wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})).Handle("/ws/secure/echo", echo)
	srv := start(t, r)

	secure := func(ip string, h http.Header, query string) (string, websocket.StatusCode) {
		t.Helper()
		if h == nil {
			h = http.Header{}
		}
		h.Set("X-Real-Ip", ip)
		c := dial(t, srv, "/ws/secure/echo"+query, &websocket.DialOptions{HTTPHeader: h})
		ctx := testutil.Ctx(t)
		c.Write(ctx, websocket.MessageText, []byte("hi"))
		_, msg, err := c.Read(ctx)
		if err != nil {
			return "", websocket.CloseStatus(err)
		}
		c.Close(websocket.StatusNormalClosure, "")
		return string(msg), 0
	}
	testCases := []struct {
		name     string
		header   http.Header
		query    string
		wantMsg  string
		wantCode websocket.StatusCode
	}{
		{"bare Authorization", http.Header{"Authorization": {"valid_token"}}, "", "Echo: hi", 0},
		{"Bearer Authorization", http.Header{"Authorization": {"Bearer valid_token"}}, "", "Echo: hi", 0},
		{"query", nil, "?token=valid_token", "Echo: hi", 0},
		{"cookie", http.Header{"Cookie": {"token=valid_token"}}, "", "Echo: hi", 0},
		{"no token", nil, "", "", 4001},
		{"wrong token", http.Header{"Authorization": {"Bearer nope"}}, "", "", 4001},
	}
	for i, tc := range testCases {
		msg, code := secure(fmt.Sprintf("10.1.0.%d", i), tc.header, tc.query)
		testutil.Equal(t, msg, tc.wantMsg)
		testutil.Equal(t, code, tc.wantCode)
	}

	// One IP over its rate sees 4003 on any route, before auth: with or
	// without a token.
	const ip = "10.2.0.1"
	start := time.Now()
	var allowed, limited int
	for range 60 {
		_, code := secure(ip, nil, "")
		switch code {
		case 4001:
			allowed++
		case 4003:
			limited++
		default:
			t.Fatalf("unexpected close %d", code)
		}
	}
	refill := int(20*time.Since(start).Seconds()) + 1
	testutil.Check(t, allowed >= 40 && allowed <= 40+refill, "%d attempts let through to auth, want 40 (+%d refill)", allowed, refill)
	testutil.Check(t, limited > 0, "no attempt was rate limited")

	// The bucket refills (20 a second) while the test runs, so some
	// attempts may get through; a client that keeps trying is soon told.
	for _, path := range []string{"/ws/echo", "/ws/secure/echo?token=valid_token"} {
		var err error
		for range 100 {
			c := dial(t, srv, path, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {ip}}})
			ctx := testutil.Ctx(t)
			c.Write(ctx, websocket.MessageText, []byte("hi"))
			if _, _, err = c.Read(ctx); err != nil {
				break
			}
			c.Close(websocket.StatusNormalClosure, "")
		}
		var ce websocket.CloseError
		testutil.Check(t, errors.As(err, &ce) && ce.Code == 4003 && ce.Reason == "Rate limit exceeded", "%s over the limit: %v", path, err)
	}
}
