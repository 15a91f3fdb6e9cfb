package wsroute_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

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

// ExampleTracker shows the graceful stop of a server: http.Server.Shutdown
// for the listener and plain requests, the Tracker for the WebSockets,
// both waited for before the process exits.
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
	srv := httptest.NewServer(mux)
	client, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseNow()
	read := make(chan error, 1)
	go func() {
		_, _, err := client.Read(context.Background())
		read <- err
	}()

	// On SIGTERM: http.Server.Shutdown does not wait for hijacked
	// connections, nor for functions given to RegisterOnShutdown, so the
	// tracker is called here and waited for: it tells each client 1001
	// and waits for its handler.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("tracker:", tracker.Shutdown(ctx))
	srv.Close()
	fmt.Println("client:", websocket.CloseStatus(<-read))
	// Output:
	// tracker: <nil>
	// client: StatusGoingAway
}
