package hub_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// roomServer serves /ws/{room}: members join {room}; each text message
// is broadcast to the room except the sender.
type roomServer struct {
	*httptest.Server
	hub     *hub.Hub
	tracker *wsroute.Tracker
	writes  atomic.Int64 // socket writes on accepted connections
}

// serveMode is how a member's connection is held after it joined: by
// its handler in a Receive loop, or by wsroute after Conn.Detach. The
// tests that take a mode must see the same in both.
type serveMode string

const (
	modeHandler  serveMode = "handler"
	modeDetached serveMode = "detached"
)

var modes = []serveMode{modeHandler, modeDetached}

// serve hands every text message of c to fn, as m holds connections; a
// binary message ends it with 1003.
func (m serveMode) serve(ctx context.Context, c *wsroute.Conn, fn func(ctx context.Context, text string) error) error {
	onMessage := func(ctx context.Context, c *wsroute.Conn, msg wsroute.Message) error {
		if msg.Type != wsroute.MessageText {
			return wsroute.ErrWrongMessageType
		}
		return fn(ctx, msg.Text())
	}
	if m == modeDetached {
		return c.Detach(ctx, onMessage)
	}
	for msg, err := range c.Messages(ctx) {
		if err != nil {
			return err
		}
		if err := onMessage(ctx, c, msg); err != nil {
			return err
		}
	}
	return nil
}

func newRoomServer(t testing.TB, hopts *hub.Options, wopts *wsroute.Options) *roomServer {
	t.Helper()
	return newRoomServerMode(t, hopts, wopts, modeHandler)
}

// newRoomServerMode is newRoomServer with its members held as mode says.
func newRoomServerMode(t testing.TB, hopts *hub.Options, wopts *wsroute.Options, mode serveMode) *roomServer {
	t.Helper()
	rs := &roomServer{hub: hub.New(hopts), tracker: wsroute.NewTracker()}
	if wopts == nil {
		wopts = &wsroute.Options{}
	}
	wopts.Tracker = rs.tracker
	mux := http.NewServeMux()
	mux.Handle("/ws/{room}", wopts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := rs.hub.Join(c, c.Param("room")); err != nil {
			return err
		}
		return mode.serve(ctx, c, func(ctx context.Context, msg string) error {
			return rs.hub.BroadcastText(ctx, c.Param("room"), msg, hub.Except(c))
		})
	}))
	rs.Server = httptest.NewUnstartedServer(mux)
	rs.Server.Listener = &countingListener{Listener: rs.Server.Listener, writes: &rs.writes}
	rs.Server.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs.hub.Shutdown(ctx)
		rs.tracker.Shutdown(ctx)
		rs.Server.Close()
	})
	return rs
}

func (rs *roomServer) dial(t testing.TB, room string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(rs.URL, "http")+"/ws/"+room, nil)
	testutil.NoErr(t, err)
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// joined waits until room has n members.
func (rs *roomServer) joined(t testing.TB, room string, n int) {
	t.Helper()
	testutil.Eventually(t, func() bool { return rs.hub.Count(room) == n }, "room %q has %d members, want %d", room, rs.hub.Count(room), n)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// SyscallConn lets wsroute reach the socket's descriptor, as it does on
// a server's own connections, so that the hub's writers make their
// non-blocking writes here too. wsroute writes through Control, so each
// call counts as a write (one that only reads the socket's state would
// make the count higher, never lower).
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	return countingRawConn{RawConn: rc, writes: c.writes}, nil
}

type countingRawConn struct {
	syscall.RawConn
	writes *atomic.Int64
}

func (r countingRawConn) Control(f func(fd uintptr)) error {
	r.writes.Add(1)
	return r.RawConn.Control(f)
}

// read returns the next text message, failing the test on error.
func read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	testutil.NoErr(t, err)
	return string(b)
}

// closeCode reads until the connection ends and returns the server's code.
func closeCode(t testing.TB, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx := testutil.Ctx(t)
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
	}
}

func newHTTPServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
