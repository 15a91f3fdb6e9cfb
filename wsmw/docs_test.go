package wsmw_test

// The middleware examples of Python Nexio (docs/guide.md), translated line
// by line, run through real connections.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// async def auth_middleware(ws, next_middleware):
//
//	token = ws.headers.get("Authorization")
//	if not token or token != "valid_token":
//	    await ws.close(code=4001, reason="Unauthorized")
//	    return
//	await next_middleware()
var authMiddleware = wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
	token := ws.Header().Get("Authorization")
	if token == "" || token != "valid_token" {
		ws.Close(4001, "Unauthorized")
		return nil
	}
	return nextMiddleware(ctx, ws)
})

func TestDocsAuthMiddleware(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name   string
		header http.Header
		want   outcome
	}{
		{"no token", nil, outcome{status: 101, code: 4001, reason: "Unauthorized"}},
		{"wrong token", http.Header{"Authorization": {"nope"}}, outcome{status: 101, code: 4001, reason: "Unauthorized"}},
		{"valid token", http.Header{"Authorization": {"valid_token"}}, outcome{status: 101, code: 1000}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ran atomic.Bool
			srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
				ran.Store(true)
				return c.Accept(ctx)
			}, authMiddleware) // app.add_ws_middleware(auth_middleware)
			got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{HTTPHeader: tc.header})
			testutil.NoErr(t, err)
			testutil.Equal(t, got, tc.want)
			testutil.Equal(t, ran.Load(), tc.want.code == 1000)
		})
	}
}

// printer stands in for Python's print.
type printer struct {
	mu    sync.Mutex
	lines []string
}

func (p *printer) print(args ...any) {
	p.mu.Lock()
	p.lines = append(p.lines, fmt.Sprint(args...))
	p.mu.Unlock()
}

func (p *printer) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func TestDocsChainingMultipleMiddlewares(t *testing.T) {
	t.Parallel()
	var out printer

	// async def log_middleware(ws, next_middleware):
	//     print(f"WebSocket request: {ws.url}")
	//     await next_middleware()
	logMiddleware := wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		out.print("WebSocket request: ", ws.URL())
		return nextMiddleware(ctx, ws)
	})

	// async def rate_limit_middleware(ws, next_middleware):
	//     if ws.client_ip in ["192.168.1.1"]:
	//         await ws.close(code=4003, reason="Rate limit exceeded")
	//     else:
	//         await next_middleware()
	rateLimitMiddleware := wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		if ws.ClientIP() == "192.168.1.1" {
			out.print("rate limited: ", ws.ClientIP())
			return ws.Close(4003, "Rate limit exceeded")
		}
		return nextMiddleware(ctx, ws)
	})

	// app.add_ws_middleware(log_middleware)
	// app.add_ws_middleware(rate_limit_middleware)
	var ran atomic.Int32
	srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
		ran.Add(1)
		return echo(ctx, c)
	}, logMiddleware, rateLimitMiddleware)

	// The blocked IP sees 4003, after the log middleware ran.
	got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws?from=blocked"),
		&websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {"192.168.1.1"}}})
	testutil.NoErr(t, err)
	testutil.Equal(t, got, outcome{status: 101, code: 4003, reason: "Rate limit exceeded"})
	testutil.Equal(t, ran.Load(), 0)
	testutil.Equal(t, out.String(), "WebSocket request: /ws?from=blocked\nrate limited: 192.168.1.1")

	// Anyone else gets through both.
	c := dial(t, srv, "/ws?from=ok", &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {"192.168.1.2"}}})
	testutil.Equal(t, roundTrip(t, c, "hi"), "Echo: hi")
	testutil.Equal(t, ran.Load(), 1)
	testutil.Check(t, strings.HasSuffix(out.String(), "WebSocket request: /ws?from=ok"), "log middleware did not run: %s", out.String())
	c.Close(websocket.StatusNormalClosure, "")
}
