package chiadapter_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"

	"github.com/nexio-go/nexio/chiadapter"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// tag is a middleware that appends name to the connection's trail;
// reportTrail sends the trail to the client. Together they reveal which
// middleware ran for a route, and in what order.
func tag(name string) wsmw.Middleware {
	return wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		trail, _ := c.Get("trail")
		s, _ := trail.(string)
		c.Set("trail", strings.TrimSpace(s+" "+name))
		return next(ctx, c)
	})
}

func reportTrail(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	trail, _ := c.Get("trail")
	s, _ := trail.(string)
	return c.SendText(ctx, s+" handler")
}

// TestStackOrder registers routes on a Router, its groups and a
// sub-router, with Use calls before and after the routes.
func TestStackOrder(t *testing.T) {
	t.Parallel()
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	ws.Use(tag("A"))
	ws.Handle("/ws/root", reportTrail)
	ws.Use(tag("B")) // after Handle: still covers /ws/root
	ws.Group(func(g *chiadapter.Router) {
		g.Use(tag("G1"))
		g.Handle("/ws/group", reportTrail)
		g.Use(tag("G2"))
		g.Group(func(gg *chiadapter.Router) {
			gg.Handle("/ws/group/nested", reportTrail)
			gg.Use(tag("N"))
		})
	})
	ws.Route("/sub", func(s *chiadapter.Router) {
		s.Handle("/ws/{id}", reportTrail)
		s.Use(tag("S"))
		s.Group(func(sg *chiadapter.Router) {
			sg.Use(tag("SG"))
			sg.Handle("/ws/deep/{id}", reportTrail)
		})
	})
	ws.With(tag("W1"), tag("W2")).Handle("/ws/with", reportTrail)
	ws.Use(tag("C")) // last of all: covers every route
	srv := start(t, r)

	testCases := []struct {
		path, want string
	}{
		{"/ws/root", "A B C handler"},
		{"/ws/group", "A B C G1 G2 handler"},
		{"/ws/group/nested", "A B C G1 G2 N handler"},
		{"/sub/ws/1", "A B C S handler"},
		{"/sub/ws/deep/1", "A B C S SG handler"},
		{"/ws/with", "A B C W1 W2 handler"},
	}
	for _, tc := range testCases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			testutil.Equal(t, firstMessage(t, srv, tc.path, nil), tc.want)
		})
	}
}

// TestUseWhileServing: a Use after connections were served applies to
// the next ones, and racing Use with handshakes is safe.
func TestUseWhileServing(t *testing.T) {
	t.Parallel()
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	ws.Use(tag("A"))
	ws.Handle("/ws", reportTrail)
	srv := start(t, r)
	testutil.Equal(t, firstMessage(t, srv, "/ws", nil), "A handler")
	testutil.Equal(t, firstMessage(t, srv, "/ws", nil), "A handler")
	ws.Use(tag("B"))
	testutil.Equal(t, firstMessage(t, srv, "/ws", nil), "A B handler")

	var wg sync.WaitGroup
	trails := make([]string, 20)
	for i := range trails {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ws.Use(tag("x"))
		}()
		go func() {
			defer wg.Done()
			c, _, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			if err != nil {
				trails[i] = err.Error()
				return
			}
			defer c.CloseNow()
			_, msg, err := c.Read(testutil.Ctx(t))
			trails[i] = string(msg)
			if err != nil {
				trails[i] = err.Error()
			}
		}()
	}
	wg.Wait()
	for i, trail := range trails {
		testutil.Check(t, strings.HasPrefix(trail, "A B") && strings.HasSuffix(trail, " handler"), "connection %d: trail %q", i, trail)
	}
	testutil.Equal(t, firstMessage(t, srv, "/ws", nil), "A B"+strings.Repeat(" x", 20)+" handler")
}

// TestChainBuiltOncePerRoute: a middleware's outer function runs when
// the chain is built, not per connection.
func TestChainBuiltOncePerRoute(t *testing.T) {
	t.Parallel()
	var builds atomic.Int32
	counting := func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		builds.Add(1)
		return next
	}
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	ws.Use(counting)
	ws.Handle("/ws", reportTrail)
	srv := start(t, r)
	for range 5 {
		firstMessage(t, srv, "/ws", nil)
	}
	testutil.Equal(t, builds.Load(), 1)
	ws.Use(tag("B"))
	for range 5 {
		firstMessage(t, srv, "/ws", nil)
	}
	testutil.Equal(t, builds.Load(), 2)
}

func TestPlainHTTPNeverReachesTheStack(t *testing.T) {
	t.Parallel()
	var ran atomic.Bool
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	ws.Use(wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		ran.Store(true)
		return next(ctx, c)
	}))
	ws.Handle("/ws", reportTrail)
	srv := start(t, r)
	resp, err := http.Get(srv.URL + "/ws")
	testutil.NoErr(t, err)
	resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusUpgradeRequired)
	testutil.Check(t, !ran.Load(), "middleware ran for a plain GET")
	resp, err = http.Get(srv.URL + "/nowhere")
	testutil.NoErr(t, err)
	resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusNotFound)
}

func TestMethodPattern(t *testing.T) {
	t.Parallel()
	opts, _ := testOptions()
	r := chi.NewRouter()
	ws := chiadapter.New(r, opts)
	ws.Handle("GET /ws", reportTrail)
	srv := start(t, r)
	testutil.Equal(t, firstMessage(t, srv, "/ws", nil), " handler")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ws", nil)
	resp, err := http.DefaultClient.Do(req)
	testutil.NoErr(t, err)
	resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusMethodNotAllowed)
}

func TestInvalidUsePanics(t *testing.T) {
	t.Parallel()
	ws := chiadapter.New(chi.NewRouter(), nil)
	mustPanic(t, "chiadapter: New called with a nil chi.Router", func() { chiadapter.New(nil, nil) })
	mustPanic(t, "chiadapter: Use called with a nil Middleware", func() { ws.Use(tag("a"), nil) })
	mustPanic(t, "chiadapter: Handle called with a nil HandlerFunc for /x", func() { ws.Handle("/x", nil) })
}
