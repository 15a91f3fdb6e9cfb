package chiadapter_test

// chiadapter routes under chi's own HTTP middleware.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestUnderChiCommonMiddleware upgrades through chi's common middleware
// and the WebSocket stack: ClientIPFromHeader decides ClientIP (and so
// the rate limit's key), RequestID reaches the handler's context, Logger
// logs the connection when it ends, with status 101.
func TestUnderChiCommonMiddleware(t *testing.T) {
	t.Parallel()
	var chiLog logBuffer
	r := chi.NewRouter()
	r.Use(middleware.RequestID, middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"),
		middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: log.New(&chiLog, "", 0), NoColor: true}),
		middleware.Recoverer)
	opts, _ := testOptions()
	ws := chiadapter.New(r, opts)
	ws.Use(wsmw.Recover, wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 1e-9, Burst: 2}))
	ws.Handle("/ws/user/{user_id}", func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		greeting := fmt.Sprintf("Welcome, User %s! ip=%s reqid=%t", chiadapter.Param(c, "user_id"),
			c.ClientIP(), middleware.GetReqID(ctx) != "")
		if err := c.SendText(ctx, greeting); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if err := c.SendText(ctx, "Echo: "+msg); err != nil {
				return err
			}
		}
	})
	srv := start(t, r)
	from := func(ip string) *websocket.DialOptions {
		return &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {ip}}}
	}

	c := dial(t, srv, "/ws/user/al%20ice?token=visible", from("203.0.113.9"))
	_, msg, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	testutil.Equal(t, string(msg), "Welcome, User al ice! ip=203.0.113.9 reqid=true")
	testutil.Equal(t, roundTrip(t, c, "hi"), "Echo: hi")
	testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, ""))

	// chi's Logger logs when the handler returns, with status 101, and
	// prints the query as it came: the package documentation warns.
	testutil.Eventually(t, func() bool { return strings.Contains(chiLog.String(), " 101 ") }, "chi's Logger: %s", &chiLog)
	testutil.Check(t, strings.Contains(chiLog.String(), "token=visible"), "chi's Logger: %s", &chiLog)

	// The rate limit counts per real IP: this one has one attempt left,
	// another IP has two.
	firstMessage(t, srv, "/ws/user/1", from("203.0.113.9"))
	c = dial(t, srv, "/ws/user/1", from("203.0.113.9"))
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4003)
	testutil.Equal(t, reason, "Rate limit exceeded")
	firstMessage(t, srv, "/ws/user/1", from("198.51.100.1"))
	firstMessage(t, srv, "/ws/user/1", from("198.51.100.1"))
}

// TestClientIP: which middleware decides Conn.ClientIP on a chiadapter
// route.
func TestClientIP(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		mw   func(http.Handler) http.Handler
		opts *wsroute.Options
		want string
	}{
		{"no middleware: RemoteAddr", nil, nil, "127.0.0.1"},
		{"ClientIPFromHeader, trusted peer", middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"), nil, "203.0.113.9"},
		{"ClientIPFromHeader, untrusted peer", middleware.ClientIPFromHeader("X-Real-IP", "192.0.2.0/24"), nil, "127.0.0.1"},
		{"ClientIPFromXFF", middleware.ClientIPFromXFF("127.0.0.0/8"), nil, "198.51.100.4"},
		// Deprecated in chi v5.5 (it believes any client), still common.
		{"RealIP", middleware.RealIP, nil, "203.0.113.9"}, //lint:ignore SA1019 tested on purpose
		{"Options.ClientIP wins", middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8"),
			&wsroute.Options{ClientIP: func(*http.Request) string { return "192.0.2.99" }}, "192.0.2.99"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := chi.NewRouter()
			if tc.mw != nil {
				r.Use(tc.mw)
			}
			ws := chiadapter.New(r, tc.opts)
			ws.Handle("/ws", func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return c.SendText(ctx, c.ClientIP()+" "+wsmw.IPKey(c))
			})
			srv := start(t, r)
			got := firstMessage(t, srv, "/ws", &websocket.DialOptions{HTTPHeader: http.Header{
				"X-Real-Ip":       {"203.0.113.9"},
				"X-Forwarded-For": {"198.51.100.4"},
			}})
			testutil.Equal(t, got, tc.want+" "+tc.want)
		})
	}
}

// TestUnderThrottle: chi's Throttle counts a WebSocket for its whole
// life, so it caps open connections, refusing the rest with HTTP 429.
func TestUnderThrottle(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	r.Use(middleware.Throttle(2))
	opts, _ := testOptions()
	ws := chiadapter.New(r, opts)
	ws.Handle("/ws", echo)
	srv := start(t, r)
	a := dial(t, srv, "/ws", nil)
	b := dial(t, srv, "/ws", nil)
	testutil.Equal(t, roundTrip(t, a, "a"), "Echo: a")
	testutil.Equal(t, roundTrip(t, b, "b"), "Echo: b")
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.Check(t, err != nil, "a third connection got through Throttle(2)")
	testutil.Equal(t, resp.StatusCode, http.StatusTooManyRequests)
	testutil.NoErr(t, a.Close(websocket.StatusNormalClosure, ""))
	var c *websocket.Conn
	testutil.Eventually(t, func() bool {
		c, _, err = websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
		return err == nil
	}, "no place freed after a connection closed")
	testutil.Equal(t, roundTrip(t, c, "c"), "Echo: c")
	c.Close(websocket.StatusNormalClosure, "")
	b.Close(websocket.StatusNormalClosure, "")
}

// TestUnderTimeout: middleware.Timeout's deadline bounds only the
// handshake. Once open, a connection (its ctx, Done and OnClose) lives on
// past it until a side closes; what remains of Timeout is the 504 it
// writes on the hijacked connection when the handler returns, which
// net/http logs, and the warning that says to keep it off WebSocket
// routes.
func TestUnderTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	r := chi.NewRouter()
	opts, logs := testOptions()
	var httpErrors logBuffer
	r.Group(func(r chi.Router) {
		r.Use(middleware.Timeout(timeout))
		ws := chiadapter.New(r, opts)
		ws.Handle("/ws/echo", func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			for {
				msg, err := c.ReceiveText(ctx)
				if err != nil {
					return err
				}
				if msg == "past the deadline?" {
					<-c.Request().Context().Done()
				}
				if err := c.SendText(ctx, fmt.Sprintf("Echo: %s ctx=%v", msg, ctx.Err())); err != nil {
					return err
				}
			}
		})
		// A send-only handler waiting on Done is not stopped by the
		// deadline.
		ws.Handle("/ws/feed", func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			c.CloseRead()
			select {
			case <-c.Done():
				return nil
			case <-c.Request().Context().Done():
				return c.SendText(ctx, fmt.Sprintf("still here, ctx=%v", ctx.Err()))
			}
		})
	})
	srv := httptest.NewUnstartedServer(r)
	srv.Config.ErrorLog = log.New(&httpErrors, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)

	echoConn := dial(t, srv, "/ws/echo", nil)
	testutil.Equal(t, roundTrip(t, echoConn, "a"), "Echo: a ctx=<nil>")
	testutil.Equal(t, roundTrip(t, echoConn, "past the deadline?"), "Echo: past the deadline? ctx=<nil>")
	testutil.Equal(t, roundTrip(t, echoConn, "b"), "Echo: b ctx=<nil>")
	testutil.NoErr(t, echoConn.Close(websocket.StatusNormalClosure, ""))

	testutil.Equal(t, firstMessage(t, srv, "/ws/feed", nil), "still here, ctx=<nil>")

	testutil.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "chiadapter: a WebSocket route's request context has a deadline")
	},
		"no warning logged:\n%s", logs)
	// Once per route, not per connection.
	again := dial(t, srv, "/ws/echo", nil)
	roundTrip(t, again, "c")
	again.Close(websocket.StatusNormalClosure, "")
	testutil.Equal(t, strings.Count(logs.String(), "request context has a deadline"), 2)
	testutil.Eventually(t, func() bool { return strings.Contains(httpErrors.String(), "hijacked connection") },
		"Timeout's 504 on the hijacked connection was not logged by net/http: %q", &httpErrors)
}

// TestSubprotocolAuthThroughChiWrappers: the subprotocol Auth echoes
// survives chi's ResponseWriter wrappers.
func TestSubprotocolAuthThroughChiWrappers(t *testing.T) {
	t.Parallel()
	r := chi.NewRouter()
	r.Use(middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: log.New(io.Discard, "", 0)}), middleware.Recoverer)
	opts, _ := testOptions()
	ws := chiadapter.New(r, opts)
	ws.Use(wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}))
	ws.Handle("/ws", echo)
	srv := start(t, r)
	testCases := []struct {
		name     string
		protos   []string
		wantCode websocket.StatusCode
	}{
		{"valid", []string{"bearer", "valid_token"}, 0},
		{"invalid", []string{"bearer", "nope"}, 4001},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, srv, "/ws", &websocket.DialOptions{Subprotocols: tc.protos})
			testutil.Equal(t, c.Subprotocol(), "bearer")
			if tc.wantCode == 0 {
				testutil.Equal(t, roundTrip(t, c, "hi"), "Echo: hi")
				c.Close(websocket.StatusNormalClosure, "")
				return
			}
			code, _ := readClose(t, c)
			testutil.Equal(t, code, tc.wantCode)
		})
	}
}
