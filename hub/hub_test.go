package hub_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

func TestBroadcastExceptSenderAndRoomIsolation(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, nil, nil)
	a, b := rs.dial(t, "lobby"), rs.dial(t, "lobby")
	other := rs.dial(t, "other")
	rs.joined(t, "lobby", 2)
	rs.joined(t, "other", 1)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, a.Write(ctx, websocket.MessageText, []byte("hello")))
	testutil.Equal(t, read(t, b), "hello")
	testutil.NoErr(t, other.Write(ctx, websocket.MessageText, []byte("elsewhere")))
	// a must see b's message next, not its own nor the other room's.
	testutil.NoErr(t, b.Write(ctx, websocket.MessageText, []byte("hi a")))
	testutil.Equal(t, read(t, a), "hi a")
	testutil.Equal(t, rs.hub.Rooms()[0], "lobby")
	testutil.Equal(t, rs.hub.Stats().Members, 3)
}

func TestAutoLeave(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		end  func(c *websocket.Conn)
	}{
		{name: "clean close", end: func(c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "") }},
		{name: "abrupt TCP drop", end: func(c *websocket.Conn) { c.CloseNow() }},
		{name: "handler returns", end: func(c *websocket.Conn) {
			// A binary message makes the handler's ReceiveText fail: the
			// handler returns while the client is still there.
			c.Write(context.Background(), websocket.MessageBinary, []byte{1})
		}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := newRoomServer(t, nil, nil)
			c := rs.dial(t, "r")
			rs.joined(t, "r", 1)
			tc.end(c)
			rs.joined(t, "r", 0)
			testutil.Equal(t, len(rs.hub.Rooms()), 0)
			testutil.Equal(t, rs.hub.Stats().Members, 0)
			testutil.Equal(t, rs.hub.Stats().Rooms, 0)
		})
	}
}

func TestJoinLeaveAndPresenceHooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	hook := func(kind string) func(string, *wsroute.Conn) {
		return func(room string, c *wsroute.Conn) {
			mu.Lock()
			events = append(events, kind+":"+room)
			mu.Unlock()
		}
	}
	h := hub.New(&hub.Options{
		OnJoin: hook("join"), OnLeave: hook("leave"),
		Describe: func(c *wsroute.Conn) map[string]string { return map[string]string{"name": c.Query("name")} },
	})
	defer h.Shutdown(context.Background())
	ready := make(chan *wsroute.Conn, 1)
	srv := newRoomServer(t, nil, nil) // only for its listener helpers
	_ = srv
	mux := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		testutil.NoErr(t, h.Join(c, "a", "b", "a"))
		ready <- c
		_, err := c.ReceiveText(ctx)
		return err
	})
	hs := newHTTPServer(t, mux)
	client, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(hs.URL, "http")+"/?name=ann", nil)
	testutil.NoErr(t, err)
	c := <-ready
	testutil.Equal(t, h.Count("a"), 1)
	pres, err := h.Presence(context.Background(), "b")
	testutil.NoErr(t, err)
	testutil.Equal(t, len(pres), 1)
	testutil.Equal(t, pres[0].Meta["name"], "ann")
	testutil.Equal(t, pres[0].ConnID, c.ID())
	testutil.Equal(t, h.Members("a")[0], c)
	h.Leave(c, "a")
	testutil.Equal(t, h.Count("a"), 0)
	testutil.Equal(t, h.Count("b"), 1)
	client.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool { return h.Count("b") == 0 }, "did not leave b")
	mu.Lock()
	defer mu.Unlock()
	testutil.Equal(t, strings.Join(events, ","), "join:a,join:b,leave:a,leave:b")
}

func TestSendTo(t *testing.T) {
	t.Parallel()
	h := hub.New(nil)
	defer h.Shutdown(context.Background())
	ids := make(chan string, 2)
	hs := newHTTPServer(t, wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		testutil.NoErr(t, h.Join(c, "r"))
		ids <- c.ID()
		_, err := c.ReceiveText(ctx)
		return err
	}))
	a, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	testutil.NoErr(t, err)
	defer a.CloseNow()
	id := <-ids
	testutil.NoErr(t, h.SendTo(context.Background(), id, wsroute.MessageText, []byte("just you")))
	testutil.Equal(t, read(t, a), "just you")
	testutil.Check(t, h.SendTo(context.Background(), "nope", wsroute.MessageText, nil) == hub.ErrNoSuchConn, "SendTo unknown ID")
}

// TestSlowConsumer: a member that never reads. The others receive every
// message in order, the broadcaster never blocks, and the slow member is
// disconnected (default) or loses messages (drop policies), as counted.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	// One mode after the other: the test bounds how long a broadcast
	// may take, and six of these at once load two cores past it.
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, policy := range []hub.Policy{hub.Disconnect, hub.DropNewest, hub.DropOldest} {
				t.Run(policy.String(), func(t *testing.T) {
					t.Parallel()
					testSlowConsumer(t, mode, policy)
				})
			}
		})
	}
}

func testSlowConsumer(t *testing.T, mode serveMode, policy hub.Policy) {
	const n = 2000
	rs := newRoomServerMode(t, &hub.Options{QueueMessages: 16, SlowConsumer: policy},
		&wsroute.Options{WriteTimeout: 30 * time.Second}, mode)
	good := rs.dial(t, "r")
	// The slow member: handshake done, then never reads, so its
	// socket buffers fill and its writer stalls.
	slow := rawMember(t, rs, "r")
	defer slow.Close()
	rs.joined(t, "r", 2)

	// The good member reads; the broadcaster keeps at most a
	// window of 8 messages ahead of it, as a chat room's pace
	// would, while the slow member falls behind without bound.
	var received atomic.Int64
	got := make(chan error, 1)
	go func() {
		for i := range n {
			_, b, err := good.Read(context.Background())
			if err != nil {
				got <- err
				return
			}
			if want := fmt.Sprintf("m%05d %s", i, strings.Repeat("x", 2000)); string(b) != want {
				got <- fmt.Errorf("message %d: got %.10q", i, b)
				return
			}
			received.Add(1)
		}
		got <- nil
	}()
	var slowest time.Duration
	for i := range n {
		for int64(i)-received.Load() > 8 {
			time.Sleep(50 * time.Microsecond)
		}
		start := time.Now()
		testutil.NoErr(t, rs.hub.BroadcastText(context.Background(), "r", fmt.Sprintf("m%05d %s", i, strings.Repeat("x", 2000))))
		slowest = max(slowest, time.Since(start))
	}
	testutil.NoErr(t, <-got)
	testutil.Check(t, slowest < time.Second, "a broadcast blocked for %v", slowest)
	st := rs.hub.Stats()
	switch policy {
	case hub.Disconnect:
		testutil.Eventually(t, func() bool { return rs.hub.Stats().SlowDisconnects == 1 }, "slow member not disconnected: %+v", rs.hub.Stats())
		rs.joined(t, "r", 1)
	default:
		testutil.Check(t, st.Dropped > 0, "no drops counted: %+v", st)
		testutil.Equal(t, st.SlowDisconnects, 0)
	}
}

// rawMember completes a handshake by hand and returns the connection,
// positioned at the first frame. It reads nothing more by itself.
func rawMember(t testing.TB, rs *roomServer, room string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(rs.URL, "http://"))
	testutil.NoErr(t, err)
	// A tiny receive buffer makes a stall come sooner.
	nc.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(nc, "GET /ws/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", room)
	br := bufio.NewReader(nc)
	line, err := br.ReadString('\n')
	testutil.NoErr(t, err)
	testutil.Check(t, strings.Contains(line, "101"), "handshake: %q", line)
	for line != "\r\n" { // the rest of the response, which may come later
		line, err = br.ReadString('\n')
		testutil.NoErr(t, err)
	}
	return &bufConn{Conn: nc, br: br}
}

// bufConn reads through the reader that parsed the handshake, so no
// byte it buffered is lost.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

func TestManyMembersInOrder(t *testing.T) {
	t.Parallel()
	// 500 members, each with its own writer, and 100 messages: more than
	// an idle member's pooled queue keeps (keepQueue) and fewer than
	// QueueMessages, so every member's queue grows and no member is cut
	// as slow. Four times the members and twice the messages proved
	// nothing more and took minutes under -race on a loaded machine.
	const members, msgs = 500, 100
	// On a loaded machine this test outlives PingInterval; pings are not
	// what it checks, so they are off, and the reader skips control
	// frames anyway.
	rs := newRoomServer(t, nil, &wsroute.Options{PingInterval: -1})
	// Raw members that parse frames themselves: 2,000 full client
	// libraries would cost more CPU than the server under test.
	conns := make([]net.Conn, members)
	for i := range conns {
		conns[i] = rawMember(t, rs, "big")
		defer conns[i].Close()
	}
	rs.joined(t, "big", members)
	var wg sync.WaitGroup
	errs := make(chan error, members)
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.SetReadDeadline(time.Now().Add(3 * time.Minute)) // bounded, generous for -race on 2 busy cores
			br := bufio.NewReader(nc)
			for i := 0; i < msgs; {
				var h [2]byte
				if _, err := ioFull(br, h[:]); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
				p := make([]byte, h[1]&0x7f)
				if _, err := ioFull(br, p); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
				if h[0]&0x08 != 0 { // a control frame: not a message
					continue
				}
				i++
				if h[0] != 0x81 || string(p) != fmt.Sprint("msg ", i-1) {
					errs <- fmt.Errorf("got frame %#x %q, want msg %d", h[0], p, i-1)
					return
				}
			}
		}()
	}
	for i := range msgs {
		testutil.NoErr(t, rs.hub.BroadcastText(context.Background(), "big", fmt.Sprint("msg ", i)))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testutil.Eventually(t, func() bool { return rs.hub.Stats().MessagesOut == uint64(members*msgs) },
		"MessagesOut = %d, want %d", rs.hub.Stats().MessagesOut, members*msgs)
}

func TestShutdownMidBroadcast(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			testShutdownMidBroadcast(t, mode)
		})
	}
}

func testShutdownMidBroadcast(t *testing.T, mode serveMode) {
	// Broadcasting in a tight loop outruns any reader; dropping keeps
	// every member connected until the shutdown tells them 1001.
	rs := newRoomServerMode(t, &hub.Options{SlowConsumer: hub.DropNewest}, nil, mode)
	const n = 20
	clients := make([]*websocket.Conn, n)
	for i := range clients {
		clients[i] = rs.dial(t, "r")
	}
	rs.joined(t, "r", n)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // broadcasts until the hub refuses
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if rs.hub.BroadcastText(context.Background(), "r", fmt.Sprint(i)) == hub.ErrClosed {
				return
			}
		}
	}()
	codes := make(chan websocket.StatusCode, n)
	for _, c := range clients {
		go func() { codes <- closeCode(t, c) }()
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testutil.NoErr(t, rs.hub.Shutdown(ctx))
	close(stop)
	<-done
	for range n {
		testutil.Equal(t, <-codes, websocket.StatusGoingAway)
	}
	testutil.Equal(t, rs.hub.Stats().Members, 0)
	testutil.Check(t, rs.hub.Join(nil, "x") != nil, "Join after Shutdown succeeded")
}

// TestBurstIsCoalesced reads raw frames: a burst to one member leaves
// the server in fewer socket writes than messages, each message its own
// complete frame, in order.
func TestBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	rs := newRoomServer(t, nil, nil)
	nc := rawMember(t, rs, "r")
	defer nc.Close()
	rs.joined(t, "r", 1)
	const n = 200
	before := rs.writes.Load()
	for i := range n {
		testutil.NoErr(t, rs.hub.BroadcastText(context.Background(), "r", fmt.Sprintf("burst %03d", i)))
	}
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		var h [2]byte
		_, err := ioFull(br, h[:])
		testutil.NoErr(t, err)
		testutil.Equal(t, h[0], byte(0x81)) // FIN + text: one complete frame
		size := int(h[1] & 0x7f)
		p := make([]byte, size)
		_, err = ioFull(br, p)
		testutil.NoErr(t, err)
		testutil.Equal(t, string(p), fmt.Sprintf("burst %03d", i))
	}
	writes := rs.writes.Load() - before
	testutil.Check(t, writes < n/2, "%d messages took %d socket writes", n, writes)
	t.Logf("%d messages in %d socket writes", n, writes)
}

func ioFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestJoinBeforeAccept: a handler that joins before Accept. A broadcast
// sent as soon as the client's dial returns (no sleep, no wait on the
// server) reaches it: membership started with the handshake.
func TestJoinBeforeAccept(t *testing.T) {
	t.Parallel()
	var joins atomic.Int64
	h := hub.New(&hub.Options{OnJoin: func(string, *wsroute.Conn) { joins.Add(1) }})
	defer h.Shutdown(context.Background())
	hs := newHTTPServer(t, wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := h.Join(c, "r"); err != nil {
			return err
		}
		if slices.Contains(h.Members("r"), c) {
			return errors.New("a member shown before its handshake")
		}
		if err := c.Accept(ctx); err != nil {
			return err
		}
		_, err := c.ReceiveText(ctx)
		return err
	}))
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	for i := range 30 {
		c, _, err := websocket.Dial(testutil.Ctx(t), url, nil)
		testutil.NoErr(t, err)
		testutil.NoErr(t, h.BroadcastText(context.Background(), "r", fmt.Sprint("right away ", i)))
		testutil.Equal(t, read(t, c), fmt.Sprint("right away ", i))
		c.Close(websocket.StatusNormalClosure, "")
	}
	testutil.Eventually(t, func() bool { return h.Count("r") == 0 }, "members did not leave")
	testutil.Equal(t, joins.Load(), int64(30))
}

// TestJoinThenRefused: a connection that joined before its handshake and
// was then refused never shows in the room, in the presence hooks or in
// the stats, and leaves by itself.
func TestJoinThenRefused(t *testing.T) {
	t.Parallel()
	var events atomic.Int64
	h := hub.New(&hub.Options{
		OnJoin:     func(string, *wsroute.Conn) { events.Add(1) },
		OnLeave:    func(string, *wsroute.Conn) { events.Add(1) },
		OnPresence: func(string, hub.PresenceEvent) { events.Add(1) },
	})
	defer h.Shutdown(context.Background())
	handlerDone := make(chan error, 1)
	hs := newHTTPServer(t, wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		err := h.Join(c, "r")
		if err == nil {
			// A broadcast meets the member that is not shown yet.
			err = h.BroadcastText(ctx, "r", "not for you")
		}
		if err == nil && h.Count("r") != 0 {
			err = errors.New("refused member counted")
		}
		handlerDone <- err
		return c.Reject(http.StatusForbidden, "no")
	}))
	_, resp, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	testutil.Check(t, err != nil, "a refused dial succeeded")
	testutil.Equal(t, resp.StatusCode, http.StatusForbidden)
	testutil.NoErr(t, <-handlerDone)
	testutil.Eventually(t, func() bool { return h.Stats().Rooms == 0 }, "refused member still in a room: %+v", h.Stats())
	pres, _ := h.Presence(context.Background(), "r")
	testutil.Equal(t, len(pres), 0)
	testutil.Equal(t, h.Stats().Members, 0)
	testutil.Equal(t, events.Load(), int64(0))
}

// TestRoomSwitchesDoNotLeak: 10,000 Leave→Join switches on one
// connection keep nothing: the member is registered with the connection
// once, not once per switch. Not parallel: it measures the heap.
func TestRoomSwitchesDoNotLeak(t *testing.T) {
	const switches = 10000
	var joins, leaves atomic.Int64
	h := hub.New(&hub.Options{
		OnJoin:  func(string, *wsroute.Conn) { joins.Add(1) },
		OnLeave: func(string, *wsroute.Conn) { leaves.Add(1) },
	})
	defer h.Shutdown(context.Background())
	grown := make(chan int64, 1)
	hs := newHTTPServer(t, wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := h.Join(c, "a"); err != nil {
			return err
		}
		before := heapInUse()
		for range switches {
			h.Leave(c, "a")
			if err := h.Join(c, "a"); err != nil {
				return err
			}
		}
		grown <- heapInUse() - before
		_, err := c.ReceiveText(ctx)
		return err
	}))
	c, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	testutil.NoErr(t, err)
	g := <-grown
	t.Logf("heap grew by %d bytes over %d switches", g, switches)
	testutil.Check(t, g < switches*16, "heap grew by %d bytes over %d room switches: something is kept per switch", g, switches)
	c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool { return leaves.Load() == switches+1 }, "leaves: %d", leaves.Load())
	testutil.Equal(t, joins.Load(), int64(switches+1))
	testutil.Equal(t, h.Stats().Members, 0)
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// openErrBroker is a Broker whose Open fails with err; it is never
// used past New.
type openErrBroker struct {
	hub.Broker
	err error
}

func (b openErrBroker) Open(string, func(hub.Envelope)) error { return b.err }
func (b openErrBroker) Close() error                          { return nil }

// TestNewWithBrokerThatCannotOpen: a broker that can never serve the hub
// (opened twice) makes New panic with an actionable message; one whose
// backend is down for now is logged at ERROR, and the hub starts.
func TestNewWithBrokerThatCannotOpen(t *testing.T) {
	t.Parallel()
	func() {
		defer func() {
			p := recover()
			testutil.Check(t, p != nil, "New did not panic")
			msg := fmt.Sprint(p)
			testutil.Check(t, strings.Contains(msg, "already open") && strings.Contains(msg, "each Hub its own"), "panic: %s", msg)
		}()
		hub.New(&hub.Options{Broker: openErrBroker{err: errors.New("somebroker: broker is already open")}})
	}()

	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	h := hub.New(&hub.Options{Logger: logger, Broker: openErrBroker{err: fmt.Errorf("somebroker: down: %w", hub.ErrUnavailable)}})
	defer h.Shutdown(context.Background())
	mu.Lock()
	defer mu.Unlock()
	testutil.Check(t, strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "somebroker: down"), "log: %s", logs.String())

	// History with a broker that keeps none: a panic that says so.
	func() {
		defer func() {
			p := recover()
			testutil.Check(t, p != nil && strings.Contains(fmt.Sprint(p), "HistoryBroker"), "panic: %v", p)
		}()
		hub.New(&hub.Options{History: hub.History{Size: 10}, Broker: openErrBroker{}})
	}()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestBadMessageTypeIsRefused: a message type that is neither text nor
// binary is refused by Broadcast, Publish and SendTo with an error that
// says so, and never reaches a member's writer, where it would fail the
// write and disconnect every member of the room.
func TestBadMessageTypeIsRefused(t *testing.T) {
	t.Parallel()
	for _, history := range []int{0, 10} {
		t.Run(fmt.Sprint("history=", history), func(t *testing.T) {
			t.Parallel()
			rs := newRoomServer(t, &hub.Options{History: hub.History{Size: history}}, nil)
			a := rs.dial(t, "r")
			rs.joined(t, "r", 1)
			ctx := testutil.Ctx(t)
			bad := wsroute.MessageType(9)
			for name, err := range map[string]error{
				"Broadcast": rs.hub.Broadcast(ctx, "r", bad, []byte("x")),
				"Publish":   func() error { _, err := rs.hub.Publish(ctx, "r", bad, []byte("x")); return err }(),
				"SendTo":    rs.hub.SendTo(ctx, rs.hub.Members("r")[0].ID(), bad, []byte("x")),
			} {
				testutil.Check(t, err != nil && strings.Contains(err.Error(), "MessageText or wsroute.MessageBinary"),
					"%s of message type 9: %v, want an error naming the valid types", name, err)
			}
			testutil.NoErr(t, rs.hub.BroadcastText(ctx, "r", "ok"))
			testutil.Equal(t, read(t, a), "ok")
		})
	}
}

// TestJoinAfterTheConnectionEnded: a connection that is over (the client
// left and Receive said so) cannot join: Join returns ErrConnClosed and
// the room stays empty.
func TestJoinAfterTheConnectionEnded(t *testing.T) {
	t.Parallel()
	h := hub.New(nil)
	defer h.Shutdown(context.Background())
	joinErr := make(chan error, 1)
	srv := newHTTPServer(t, wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		_, _, err := c.Receive(ctx)
		<-c.Done() // over: the peer's close was read
		joinErr <- h.Join(c, "late")
		return err
	}))
	c, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	testutil.NoErr(t, err)
	c.Close(websocket.StatusNormalClosure, "bye")
	testutil.Check(t, errors.Is(<-joinErr, hub.ErrConnClosed), "Join on a connection that is over did not fail with ErrConnClosed")
	testutil.Equal(t, h.Count("late"), 0)
}
