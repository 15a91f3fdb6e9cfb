package wsmw_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// tagger returns a middleware that appends its tag on the way in and
// out, revealing the order in which a chain runs.
func tagger(mu *sync.Mutex, tags *[]string, tag string) wsmw.Middleware {
	add := func(s string) {
		mu.Lock()
		*tags = append(*tags, s)
		mu.Unlock()
	}
	return wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		add(">" + tag)
		err := next(ctx, c)
		add("<" + tag)
		return err
	})
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name  string
		build func(a, b, c wsmw.Middleware) wsmw.Middleware
	}{
		{"flat", func(a, b, c wsmw.Middleware) wsmw.Middleware { return wsmw.Chain(a, b, c) }},
		{"nested first", func(a, b, c wsmw.Middleware) wsmw.Middleware { return wsmw.Chain(wsmw.Chain(a, b), c) }},
		{"nested last", func(a, b, c wsmw.Middleware) wsmw.Middleware { return wsmw.Chain(a, wsmw.Chain(b, c)) }},
		{"with empty chains", func(a, b, c wsmw.Middleware) wsmw.Middleware {
			return wsmw.Chain(wsmw.Chain(), a, wsmw.Chain(b), wsmw.Chain(), c)
		}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var tags []string
			mw := tc.build(tagger(&mu, &tags, "a"), tagger(&mu, &tags, "b"), tagger(&mu, &tags, "c"))
			done := make(chan struct{})
			srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
				mu.Lock()
				tags = append(tags, "handler")
				mu.Unlock()
				return c.Accept(ctx)
			}, func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
				h := mw(next)
				return func(ctx context.Context, c *wsroute.Conn) error {
					defer close(done)
					return h(ctx, c)
				}
			})
			c := dial(t, srv, "/ws", nil)
			readClose(t, c)
			<-done
			mu.Lock()
			defer mu.Unlock()
			testutil.Equal(t, strings.Join(tags, " "), ">a >b >c handler <c <b <a")
		})
	}
}

func TestEmptyChainIsIdentity(t *testing.T) {
	t.Parallel()
	var called atomic.Bool
	h := func(ctx context.Context, c *wsroute.Conn) error { called.Store(true); return nil }
	testutil.Check(t, wsmw.Chain()(h)(context.Background(), nil) == nil, "empty chain changed the result")
	testutil.Check(t, called.Load(), "empty chain did not call the handler")
}

func TestInvalidMiddlewarePanics(t *testing.T) {
	t.Parallel()
	mustPanic(t, "wsmw: Chain: middleware 1 of 2 is nil", func() { wsmw.Chain(wsmw.Recover, nil) })
	mustPanic(t, "wsmw: Func called with a nil function", func() { wsmw.Func(nil) })
}

// TestMiddlewareOutcomes covers what a middleware can do instead of
// calling next, as the client sees it.
func TestMiddlewareOutcomes(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		mw   wsmw.Middleware
		want outcome
	}{
		{
			name: "neither calls next nor refuses",
			mw: wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				return nil
			}),
			want: outcome{status: http.StatusForbidden},
		},
		{
			name: "closes before accept",
			mw: wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				return c.Close(4001, "Unauthorized")
			}),
			want: outcome{status: 101, code: 4001, reason: "Unauthorized"},
		},
		{
			name: "returns a CloseError",
			mw: wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				return &wsroute.CloseError{Code: 4003, Reason: "Rate limit exceeded"}
			}),
			want: outcome{status: 101, code: 4003, reason: "Rate limit exceeded"},
		},
		{
			name: "rejects over HTTP",
			mw: wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				return c.Reject(http.StatusTeapot, "no")
			}),
			want: outcome{status: http.StatusTeapot},
		},
		{
			name: "panics",
			mw: wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				panic("middleware bug")
			}),
			want: outcome{status: http.StatusInternalServerError},
		},
		{
			name: "panics below Recover",
			mw: wsmw.Chain(wsmw.Recover, wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
				panic("middleware bug")
			})),
			want: outcome{status: http.StatusInternalServerError},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ran atomic.Bool
			srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
				ran.Store(true)
				return echo(ctx, c)
			}, tc.mw)
			got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			testutil.NoErr(t, err)
			testutil.Equal(t, got, tc.want)
			testutil.Check(t, !ran.Load(), "the handler ran after the middleware refused")
			// The server keeps serving.
			got, err = attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			testutil.NoErr(t, err)
			testutil.Equal(t, got, tc.want)
		})
	}
}

type ctxKey string

func TestContextValuesReachTheHandler(t *testing.T) {
	t.Parallel()
	setUser := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		return next(context.WithValue(ctx, ctxKey("user"), c.Query("user")), c)
	})
	setRoom := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		c.Set("room", "lobby")
		return next(context.WithValue(ctx, ctxKey("seen-user"), ctx.Value(ctxKey("user"))), c)
	})
	srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		room, _ := c.Get("room")
		return c.SendText(ctx, ctx.Value(ctxKey("user")).(string)+" "+
			ctx.Value(ctxKey("seen-user")).(string)+" "+room.(string))
	}, setUser, setRoom)
	c := dial(t, srv, "/ws?user=alice", nil)
	_, got, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "alice alice lobby")
}
