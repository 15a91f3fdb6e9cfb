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
	"net/http/httptest"
	"sync"
	"sync/atomic"
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
	// without a token. The bucket refills 20 a second while the attempts
	// run, so they run several at a time, to outpace the refill however
	// slow the machine is, until the first is refused; what got through
	// is then bounded by the time that took.
	const ip = "10.2.0.1"
	start := time.Now()
	got := untilLimited(t, srv, "/ws/secure/echo", ip)
	refill := int(20*time.Since(start).Seconds()) + 1
	testutil.Check(t, len(got) == 2 && got[4003] > 0, "outcomes: %v, want only 4001 and 4003", got)
	testutil.Check(t, got[4001] >= 40 && got[4001] <= 40+refill, "%d attempts let through to auth, want 40 (+%d refill)", got[4001], refill)

	// The bucket stays near empty while a client keeps trying, so some
	// attempts may get through; a client that keeps trying is soon told,
	// on the open route as on the one with a token.
	for _, path := range []string{"/ws/echo", "/ws/secure/echo?token=valid_token"} {
		got := untilLimited(t, srv, path, ip)
		testutil.Check(t, len(got) <= 2 && got[4003] > 0 && got[4003]+got[0] == sum(got), "%s: outcomes %v, want only echoes and 4003", path, got)
	}
}

// limitWorkers is how many attempts untilLimited has in progress at once:
// enough to outpace a refill of 20 a second even when each attempt takes
// a few hundred milliseconds on a loaded machine.
const limitWorkers = 8

// untilLimited makes attempts at path from ip, limitWorkers at a time,
// until one is refused with 4003 "Rate limit exceeded" (or
// testutil.EventuallyTimeout passes), and counts how each ended: 0 for
// an echo, else the close code (-1 for a failed dial or a dropped
// connection).
func untilLimited(t *testing.T, srv *httptest.Server, path, ip string) map[websocket.StatusCode]int {
	t.Helper()
	ctx := testutil.Ctx(t)
	deadline := time.Now().Add(testutil.EventuallyTimeout)
	var limited atomic.Bool
	var mu sync.Mutex
	got := make(map[websocket.StatusCode]int)
	var wg sync.WaitGroup
	for range limitWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !limited.Load() && time.Now().Before(deadline) {
				code := limitAttempt(ctx, wsURL(srv, path), ip)
				if code == 4003 {
					limited.Store(true)
				}
				mu.Lock()
				got[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got
}

// limitAttempt dials, says hi and returns 0 if it hears the echo, else
// the close code, checking that a 4003 comes with its reason.
func limitAttempt(ctx context.Context, url, ip string) websocket.StatusCode {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {ip}}})
	if err != nil {
		return -1
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	_, msg, err := c.Read(ctx)
	var ce websocket.CloseError
	switch {
	case err == nil && string(msg) == "Echo: hi":
		c.Close(websocket.StatusNormalClosure, "")
		return 0
	case errors.As(err, &ce) && (ce.Code != 4003 || ce.Reason == "Rate limit exceeded"):
		return ce.Code
	}
	return -1
}

func sum(m map[websocket.StatusCode]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
