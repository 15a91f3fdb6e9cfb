package wsroute

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/internal/testutil"
)

// TestCoderConnReleasedWhenTheSocketClosedFirst: a connection whose
// socket was closed under the handler (here: the peer missed its pong)
// has its coder/websocket Conn closed when the handler returns, not
// left to that Conn's finalizer, which keeps it and its buffers alive
// for another garbage collection (and its flate state out of coder's
// pools) on a busy server.
func TestCoderConnReleasedWhenTheSocketClosedFirst(t *testing.T) {
	tr := NewTracker()
	conns := make(chan *Conn, 1)
	opts := &Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond, Tracker: tr}
	srv := httptest.NewServer(opts.Handle(func(ctx context.Context, c *Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		conns <- c
		_, _, err := c.Receive(ctx)
		return err
	}))
	defer srv.Close()
	ctx := testutil.Ctx(t)
	// The client never reads, so it never answers a ping.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	testutil.NoErr(t, err)
	defer ws.CloseNow()
	c := <-conns
	testutil.Eventually(t, func() bool { return tr.Len() == 0 }, "the handler did not return after the missed pong")
	testutil.Check(t, coderClosed(c.ws), "the handler returned and coder/websocket's Conn is still open")
}

// coderClosed reports whether coder/websocket's Conn has run its close
// (its private closed channel is closed): what its finalizer would
// otherwise do.
func coderClosed(ws *websocket.Conn) bool {
	f := reflect.ValueOf(ws).Elem().FieldByName("closed")
	ch := *(*chan struct{})(unsafe.Pointer(f.UnsafeAddr()))
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
