package wsroute_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// TestCloseAsSoonAsAccepted: another goroutine may Close the moment
// Accepted reports true, while Accept is still finishing (bug: the
// keepalive timer was stored after accepted was published, and Close
// read it; -race reported it).
func TestCloseAsSoonAsAccepted(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		closed := make(chan error, 1)
		go func() {
			for !c.Accepted() {
				runtime.Gosched()
			}
			closed <- c.Close(wsroute.StatusGoingAway, "bye")
		}()
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return <-closed
	})
	for range 5 {
		c := dial(t, srv, "/ws", nil)
		code, _ := readClose(t, c)
		testutil.Equal(t, code, websocket.StatusGoingAway)
	}
}

// TestStates walks a connection through its states and checks that
// State, Accepted and Done agree at each step.
func TestStates(t *testing.T) {
	t.Parallel()
	type step struct {
		state    wsroute.State
		accepted bool
		done     bool
	}
	observe := func(c *wsroute.Conn) step {
		s := step{state: c.State(), accepted: c.Accepted()}
		select {
		case <-c.Done():
			s.done = true
		default:
		}
		return s
	}
	testCases := []struct {
		name string
		// run drives the connection and returns what it saw after each
		// transition it caused; the last entry is read after the end.
		run  func(ctx context.Context, c *wsroute.Conn, seen *[]step) error
		want []step
	}{
		{
			name: "accepted, then closed by the handler",
			run: func(ctx context.Context, c *wsroute.Conn, seen *[]step) error {
				*seen = append(*seen, observe(c))
				testutil.NoErr(t, c.Accept(ctx))
				*seen = append(*seen, observe(c))
				testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, ""))
				*seen = append(*seen, observe(c))
				return nil
			},
			want: []step{
				{state: wsroute.StateHandshake},
				{state: wsroute.StateOpen, accepted: true},
				{state: wsroute.StateClosed, accepted: true, done: true},
			},
		},
		{
			name: "rejected",
			run: func(ctx context.Context, c *wsroute.Conn, seen *[]step) error {
				testutil.NoErr(t, c.Reject(http.StatusUnauthorized, ""))
				*seen = append(*seen, observe(c))
				return nil
			},
			want: []step{{state: wsroute.StateRefused, done: true}},
		},
		{
			name: "refused with a close code",
			run: func(ctx context.Context, c *wsroute.Conn, seen *[]step) error {
				testutil.NoErr(t, c.Close(4001, "Unauthorized"))
				*seen = append(*seen, observe(c))
				return nil
			},
			want: []step{{state: wsroute.StateClosed, done: true}},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var seen []step
			ended := make(chan *wsroute.Conn, 1)
			srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				c.OnEnd(func(wsroute.ConnEnd) { ended <- c })
				return tc.run(ctx, c, &seen)
			})
			c, _, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			if err == nil {
				readClose(t, c)
				c.CloseNow()
			}
			conn := <-ended
			testutil.Equal(t, len(seen), len(tc.want))
			for i := range seen {
				testutil.Equal(t, seen[i], tc.want[i])
			}
			last := tc.want[len(tc.want)-1]
			testutil.Equal(t, observe(conn), last)
		})
	}
}

// TestHooksAtAnyState: OnAccept and OnClose may be registered in any
// state (the hub does so from other goroutines). A hook whose moment has
// passed runs at once, or never if it can no longer come.
func TestHooksAtAnyState(t *testing.T) {
	t.Parallel()
	t.Run("OnAccept after Accept runs at once", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
			testutil.NoErr(t, c.Accept(ctx))
			ran := make(chan struct{})
			// Registered under a lock that fn takes, as the hub does:
			// fn runs in its own goroutine, so this does not deadlock.
			mu.Lock()
			c.OnAccept(func() {
				mu.Lock()
				close(ran)
				mu.Unlock()
			})
			mu.Unlock()
			select {
			case <-ran:
			case <-testutil.Ctx(t).Done():
				t.Error("OnAccept registered after Accept did not run")
			}
			return nil
		})
		c := dial(t, srv, "/ws", nil)
		readClose(t, c)
	})
	t.Run("OnAccept after a refusal never runs", func(t *testing.T) {
		t.Parallel()
		var ran atomic.Bool
		done := make(chan struct{})
		srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
			defer close(done)
			c.Reject(http.StatusForbidden, "")
			c.OnAccept(func() { ran.Store(true) })
			return c.Accept(ctx)
		})
		websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
		<-done
		testutil.Check(t, !ran.Load(), "OnAccept ran for a refused connection")
	})
	t.Run("OnAccept from another goroutine during Accept runs once", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
			registered := make(chan struct{})
			go func() {
				defer close(registered)
				c.OnAccept(func() { n.Add(1) })
			}()
			testutil.NoErr(t, c.Accept(ctx))
			<-registered
			return nil
		})
		for range 20 {
			n.Store(0)
			c := dial(t, srv, "/ws", nil)
			readClose(t, c)
			testutil.Eventually(t, func() bool { return n.Load() == 1 }, "OnAccept ran %d times", n.Load())
		}
	})
	t.Run("OnClose after the end runs at once", func(t *testing.T) {
		t.Parallel()
		ran := make(chan struct{})
		srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
			c.Reject(http.StatusForbidden, "")
			<-c.Done()
			c.OnClose(func() { close(ran) })
			return nil
		})
		websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
		<-ran
	})
}

// TestRequestEndsBeforeAccept: while the handshake is pending, the
// request's context ending (the client left, or a middleware's deadline
// passed) refuses the connection: Done closes, OnClose runs, State says
// so, and Accept fails with ErrClosed.
func TestRequestEndsBeforeAccept(t *testing.T) {
	t.Parallel()
	type seen struct {
		state     wsroute.State
		acceptErr error
	}
	got := make(chan seen, 1)
	var closed atomic.Bool
	route := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		c.OnClose(func() { closed.Store(true) })
		<-c.Done() // a slow auth lookup that honours ctx
		testutil.Eventually(t, closed.Load, "OnClose did not run")
		got <- seen{state: c.State(), acceptErr: c.Accept(ctx)}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A middleware whose deadline passes during the handshake.
		ctx, cancel := context.WithCancel(r.Context())
		cancel()
		route.ServeHTTP(w, r.WithContext(ctx))
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	s := <-got
	testutil.Equal(t, s.state, wsroute.StateRefused)
	testutil.Check(t, errors.Is(s.acceptErr, wsroute.ErrClosed), "Accept after the request ended: %v", s.acceptErr)
}
