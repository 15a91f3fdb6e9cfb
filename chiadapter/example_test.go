package chiadapter_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/nexio-go/nexio/chiadapter"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// WebSocket routes on chi, with a middleware stack for all of them and
// one more for a single route.
func ExampleNew() {
	r := chi.NewRouter()
	// Behind a proxy at 10.0.0.0/8 that sets X-Real-IP, the rate limit
	// counts per client rather than per proxy.
	r.Use(middleware.ClientIPFromHeader("X-Real-IP", "10.0.0.0/8"))
	ws := chiadapter.New(r, nil)
	ws.Use(wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}))

	ws.Handle("/ws/user/{user_id}", func(ctx context.Context, c *wsroute.Conn) error {
		userID := chiadapter.Param(c, "user_id")
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, fmt.Sprintf("Welcome, User %s!", userID))
	})
	ws.With(wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})).Handle("/ws/secure/hello",
		func(ctx context.Context, c *wsroute.Conn) error {
			if err := c.Accept(ctx); err != nil {
				return err
			}
			return c.SendText(ctx, "hello, insider")
		})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, path := range []string{"/ws/user/al%20ice", "/ws/secure/hello", "/ws/secure/hello?token=valid_token"} {
		ctx := context.Background()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
		if err != nil {
			panic(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil {
			fmt.Println("closed with", int(websocket.CloseStatus(err)))
		} else {
			fmt.Println(string(msg))
		}
		c.CloseNow()
	}
	// Output:
	// Welcome, User al ice!
	// closed with 4001
	// hello, insider
}

// Middleware added with Use cover the routes of the Router and its
// groups, in the order added, even routes registered before the Use.
func ExampleRouter_Use() {
	say := func(word string) wsmw.Middleware {
		return wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
			words, _ := c.Get("words")
			s, _ := words.(string)
			c.Set("words", strings.TrimSpace(s+" "+word))
			return next(ctx, c)
		})
	}
	handler := func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		words, _ := c.Get("words")
		return c.SendText(ctx, words.(string))
	}
	r := chi.NewRouter()
	ws := chiadapter.New(r, nil)
	ws.Use(say("first"))
	ws.Handle("/ws/a", handler)
	ws.Group(func(g *chiadapter.Router) {
		g.Use(say("group"))
		g.Handle("/ws/b", handler)
	})
	ws.Use(say("last"))
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, path := range []string{"/ws/a", "/ws/b"} {
		ctx := context.Background()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
		if err != nil {
			panic(err)
		}
		_, msg, _ := c.Read(ctx)
		fmt.Printf("%s: %s\n", path, msg)
		c.CloseNow()
	}
	// Output:
	// /ws/a: first last
	// /ws/b: first last group
}
