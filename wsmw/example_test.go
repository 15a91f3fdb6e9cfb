package wsmw_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// echoHandler is the Nexio echo example.
func echoHandler(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
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
}

// try dials url, sends "hi" if the server lets it, and prints the reply
// or the close code that refused it.
func try(url string, opts *websocket.DialOptions) {
	fmt.Println(reply(url, opts))
}

func reply(url string, opts *websocket.DialOptions) string {
	ctx := context.Background()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return fmt.Sprint("HTTP ", resp.StatusCode)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	_, msg, err := c.Read(ctx)
	if err != nil {
		return fmt.Sprint(int(websocket.CloseStatus(err)), " ",
			strings.TrimPrefix(err.Error(), "failed to get reader: received close frame: "))
	}
	c.Close(websocket.StatusNormalClosure, "")
	return string(msg)
}

// The demo server's secure echo: the token "valid_token" from the
// Authorization header (bare or Bearer), ?token=, the "token" cookie, or
// the subprotocol pair browsers can send. Without it the client sees
// close 4001.
func ExampleAuth() {
	mux := http.NewServeMux()
	secure := wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})
	mux.Handle("/ws/secure/echo", wsroute.Handle(secure(echoHandler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/secure/echo"

	try(url, nil)
	try(url+"?token=valid_token", nil)
	try(url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer valid_token"}}})
	try(url, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {"token=valid_token"}}})
	try(url, &websocket.DialOptions{Subprotocols: []string{"bearer", "valid_token"}})
	// Output:
	// 4001 status = StatusCode(4001) and reason = "Unauthorized"
	// Echo: hi
	// Echo: hi
	// Echo: hi
	// Echo: hi
}

// Validate checks tokens your way and hands the identity to the handler.
func ExampleIdentity() {
	type User struct{ Name string }
	auth := wsmw.Auth(wsmw.AuthOptions{
		Validate: func(ctx context.Context, token string) (any, error) {
			if token != "alice-token" {
				return nil, fmt.Errorf("unknown token")
			}
			return &User{Name: "alice"}, nil
		},
	})
	h := wsroute.Handle(auth(func(ctx context.Context, c *wsroute.Conn) error {
		user, _ := wsmw.Identity[*User](ctx)
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, "Welcome, "+user.Name+"!")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	try("ws"+strings.TrimPrefix(srv.URL, "http")+"?token=alice-token", nil)
	// Output: Welcome, alice!
}

// Middleware run in the order given; each may act before and after the
// rest of the chain.
func ExampleChain() {
	tag := func(name string) wsmw.Middleware {
		return wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
			fmt.Println("enter", name)
			defer fmt.Println("leave", name)
			return next(ctx, c)
		})
	}
	done := make(chan struct{})
	h := wsmw.Chain(tag("logging"), tag("rate limit"), tag("auth"))(func(ctx context.Context, c *wsroute.Conn) error {
		fmt.Println("handler")
		return c.Accept(ctx)
	})
	srv := httptest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		defer close(done)
		return h(ctx, c)
	}))
	defer srv.Close()

	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	<-done
	// Output:
	// enter logging
	// enter rate limit
	// enter auth
	// handler
	// leave auth
	// leave rate limit
	// leave logging
}

// The Nexio rate_limit_middleware, as written in the docs: Func takes
// next as a parameter.
func ExampleFunc() {
	rateLimitMiddleware := wsmw.Func(func(ctx context.Context, ws *wsroute.Conn, nextMiddleware wsroute.HandlerFunc) error {
		if ws.ClientIP() == "127.0.0.1" {
			return ws.Close(4003, "Rate limit exceeded")
		}
		return nextMiddleware(ctx, ws)
	})
	srv := httptest.NewServer(wsroute.Handle(rateLimitMiddleware(echoHandler)))
	defer srv.Close()

	try("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	// Output: 4003 status = StatusCode(4003) and reason = "Rate limit exceeded"
}

// A client over its rate sees close 4003, before any other middleware
// (here Auth) runs.
func ExampleRateLimit() {
	chain := wsmw.Chain(
		wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 0.01, Burst: 2}),
		wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}),
	)
	srv := httptest.NewServer(wsroute.Handle(chain(echoHandler)))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "?token=valid_token"

	for range 3 {
		try(url, nil)
	}
	// Output:
	// Echo: hi
	// Echo: hi
	// 4003 status = StatusCode(4003) and reason = "Rate limit exceeded"
}

// lineWriter writes log lines to stdout and says when one was written.
type lineWriter chan struct{}

func (w lineWriter) Write(p []byte) (int, error) {
	os.Stdout.Write(p)
	w <- struct{}{}
	return len(p), nil
}

// Logger writes one line per refusal, two per accepted connection. (The
// time, the connection ID and the duration are left out here so that
// the output is stable.)
func ExampleLogger() {
	lines := make(lineWriter, 1)
	logger := slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "conn", "duration":
				return slog.Attr{}
			}
			return a
		},
	}))
	chain := wsmw.Chain(wsmw.Logger(logger), wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}))
	mux := http.NewServeMux()
	mux.Handle("/ws/secure/echo", wsroute.Handle(chain(echoHandler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/secure/echo"

	refused := reply(url+"?token=wrong", nil)
	<-lines
	fmt.Println(refused)
	echoed := reply(url+"?token=valid_token&room=lobby", nil)
	<-lines
	<-lines
	fmt.Println(echoed)
	// Output:
	// level=INFO msg="websocket refused" route=/ws/secure/echo path=/ws/secure/echo query="token=REDACTED" remote=127.0.0.1 status=101 code=4001 reason=Unauthorized error="wsmw: unauthorized: token does not match"
	// 4001 status = StatusCode(4001) and reason = "Unauthorized"
	// level=INFO msg="websocket accepted" route=/ws/secure/echo path=/ws/secure/echo query="token=REDACTED&room=lobby" remote=127.0.0.1 subprotocol=""
	// level=INFO msg="websocket closed" route=/ws/secure/echo path=/ws/secure/echo query="token=REDACTED&room=lobby" remote=127.0.0.1 code=1000 reason="" msgs_in=1 msgs_out=1 bytes_in=2 bytes_out=8
	// Echo: hi
}
