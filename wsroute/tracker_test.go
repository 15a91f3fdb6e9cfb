package wsroute_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestTrackerShutdown(t *testing.T) {
	t.Parallel()
	tr := wsroute.NewTracker()
	opts := &wsroute.Options{Tracker: tr}
	srv := serve(t, opts, "/ws", echo)
	const n = 5
	var conns []*websocket.Conn
	for range n {
		conns = append(conns, dial(t, srv, "/ws", nil))
	}
	testutil.Eventually(t, func() bool { return tr.Len() == n }, "Len = %d, want %d", tr.Len(), n)

	codes := make(chan websocket.StatusCode, n)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := readClose(t, c)
			codes <- code
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testutil.NoErr(t, tr.Shutdown(ctx))
	wg.Wait()
	close(codes)
	for code := range codes {
		testutil.Equal(t, code, websocket.StatusGoingAway)
	}
	testutil.Equal(t, tr.Len(), 0)

	// New connections after the shutdown are told the same.
	c := dial(t, srv, "/ws", nil)
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusGoingAway)
}

func TestTrackerShutdownDropsStuckHandlers(t *testing.T) {
	t.Parallel()
	tr := wsroute.NewTracker()
	release := make(chan struct{})
	srv := serve(t, &wsroute.Options{Tracker: tr, CloseTimeout: 100 * time.Millisecond}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		<-release // ignores everything
		return nil
	})
	defer close(release)
	c := dial(t, srv, "/ws", nil)
	go c.Read(context.Background()) // answers the close handshake
	testutil.Eventually(t, func() bool { return tr.Len() == 1 }, "not tracked")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := tr.Shutdown(ctx)
	testutil.Check(t, errors.Is(err, context.DeadlineExceeded), "Shutdown = %v, want DeadlineExceeded", err)
}

// ExampleTracker shows the graceful stop of a server.
func ExampleTracker() {
	tracker := wsroute.NewTracker()
	opts := &wsroute.Options{Tracker: tracker}
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
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
	}))
	srv := &http.Server{Addr: "127.0.0.1:0", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// http.Server.Shutdown does not wait for WebSocket connections: the
	// tracker tells each client 1001 and waits for its handler.
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tracker.Shutdown(ctx)
	})
	_ = srv // srv.ListenAndServe(), then srv.Shutdown(ctx) on SIGTERM
}
