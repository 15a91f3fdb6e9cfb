package wsroute_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// serveMode is how a test's connection is held after Accept: by its
// handler, in a Receive loop, or by wsroute after Detach, its idle
// reader waiting on a goroutine of its own (detached, as on systems
// without the poller) or, on Linux, registered with the poller and no
// goroutine (epoll, Detach's default there). The tests of this file run
// in all, and must see the same thing.
type serveMode string

const (
	modeHandler  serveMode = "handler"
	modeDetached serveMode = "detached"
	modeEpoll    serveMode = "epoll"
)

var modes = []serveMode{modeHandler, modeDetached, modeEpoll}

// detached reports whether m detaches its connections.
func (m serveMode) detached() bool { return m != modeHandler }

// handle accepts, then hands every message to fn, as m holds
// connections. A nil fn is a connection that only sends: a data message
// ends it with 1008 in both modes. Each connection's ConnEnd goes to ends
// when it ends, if ends is not nil.
func (m serveMode) handle(fn wsroute.MessageFunc, ends chan<- wsroute.ConnEnd) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) error {
		if ends != nil {
			c.OnEnd(func(e wsroute.ConnEnd) { ends <- e })
		}
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if m.detached() {
			if m == modeDetached {
				wsroute.DetachWithoutPoller(c)
			}
			return c.Detach(ctx, fn)
		}
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			if fn == nil {
				return &wsroute.CloseError{Code: wsroute.StatusPolicyViolation, Reason: "unexpected data message"}
			}
			if err := fn(ctx, c, msg); err != nil {
				return err
			}
		}
		return nil
	}
}

// echoMessage answers each text message with "Echo: " and the message.
func echoMessage(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
	if m.Type != wsroute.MessageText {
		return fmt.Errorf("%w: got binary", wsroute.ErrWrongMessageType)
	}
	return c.SendText(ctx, "Echo: "+m.Text())
}

// nextEnd returns the next ConnEnd, failing the test after a while.
func nextEnd(t *testing.T, ends <-chan wsroute.ConnEnd) wsroute.ConnEnd {
	t.Helper()
	select {
	case e := <-ends:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end")
		return wsroute.ConnEnd{}
	}
}

// TestModesErrorsBecomeCloseCodes is the table of the package
// documentation, for a connection held by its handler and a detached one.
func TestModesErrorsBecomeCloseCodes(t *testing.T) {
	t.Parallel()
	text := func(s string) func(ctx context.Context, c *websocket.Conn) error {
		return func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(s))
		}
	}
	testCases := []struct {
		name       string
		fn         wsroute.MessageFunc
		hook       func(wsroute.MessageType, int) error // OnReceive
		send       func(ctx context.Context, c *websocket.Conn) error
		wantCode   websocket.StatusCode
		wantReason string
		wantLog    string
	}{
		{
			name: "CloseError",
			fn: func(context.Context, *wsroute.Conn, wsroute.Message) error {
				return &wsroute.CloseError{Code: 4000, Reason: "custom"}
			},
			wantCode: 4000, wantReason: "custom",
		},
		{
			name: "wrapped CloseError",
			fn: func(context.Context, *wsroute.Conn, wsroute.Message) error {
				return fmt.Errorf("ctx: %w", &wsroute.CloseError{Code: 4002, Reason: "wrapped"})
			},
			wantCode: 4002, wantReason: "wrapped",
		},
		{
			name: "normal closure",
			fn: func(context.Context, *wsroute.Conn, wsroute.Message) error {
				return &wsroute.CloseError{Code: wsroute.StatusNormalClosure}
			},
			wantCode: websocket.StatusNormalClosure,
		},
		{
			name: "binary where text expected",
			fn:   echoMessage,
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageBinary, []byte{1, 2})
			},
			wantCode: websocket.StatusUnsupportedData, wantLog: "level=INFO",
		},
		{
			name: "invalid UTF-8",
			fn:   echoMessage,
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageText, []byte{0xff, 0xfe})
			},
			wantCode: websocket.StatusInvalidFramePayloadData,
		},
		{
			name: "bad JSON",
			fn: func(_ context.Context, _ *wsroute.Conn, m wsroute.Message) error {
				var v struct{ A int }
				if err := json.Unmarshal(m.Data, &v); err != nil {
					return fmt.Errorf("%w: %w", wsroute.ErrInvalidJSON, err)
				}
				return nil
			},
			send:     text(`{"A":"x"}`),
			wantCode: websocket.StatusInvalidFramePayloadData, wantLog: "level=INFO",
		},
		{
			name:     "over the read limit",
			fn:       echoMessage,
			send:     text(strings.Repeat("a", 64<<10+1)),
			wantCode: websocket.StatusMessageTooBig,
		},
		{
			name: "other error",
			fn: func(context.Context, *wsroute.Conn, wsroute.Message) error {
				return errors.New("db password is hunter2")
			},
			wantCode: websocket.StatusInternalError, wantReason: "internal error",
			wantLog: "db password is hunter2",
		},
		{
			name: "panic",
			fn: func(context.Context, *wsroute.Conn, wsroute.Message) error {
				var p *struct{ n int }
				return fmt.Errorf("%d", p.n) // nil dereference: a runtime panic
			},
			wantCode: websocket.StatusInternalError, wantReason: "internal error",
			wantLog: "goroutine",
		},
		{
			name:     "data to a connection that only sends",
			wantCode: websocket.StatusPolicyViolation, wantReason: "unexpected data message",
		},
		{
			name: "OnReceive refuses",
			fn:   echoMessage,
			hook: func(wsroute.MessageType, int) error {
				return &wsroute.CloseError{Code: 4008, Reason: "too chatty"}
			},
			wantCode: 4008, wantReason: "too chatty",
		},
	}
	for _, mode := range modes {
		for _, tc := range testCases {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				logger, logs := testLogger(t)
				ends := make(chan wsroute.ConnEnd, 1)
				handle := mode.handle(tc.fn, ends)
				srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
					if tc.hook != nil {
						c.OnReceive(tc.hook)
					}
					return handle(ctx, c)
				})
				c := dial(t, srv, "/ws", nil)
				c.SetReadLimit(-1)
				send := tc.send
				if send == nil {
					send = text("go")
				}
				testutil.NoErr(t, send(testutil.Ctx(t), c))
				code, reason := readClose(t, c)
				testutil.Equal(t, code, tc.wantCode)
				if tc.wantReason != "" {
					testutil.Equal(t, reason, tc.wantReason)
				}
				testutil.Check(t, !strings.Contains(reason, "hunter2"), "internal error text leaked to the client: %q", reason)
				e := nextEnd(t, ends)
				testutil.Equal(t, int(e.Code), int(tc.wantCode))
				testutil.Check(t, e.Accepted && !e.PeerClosed, "ConnEnd %+v: want accepted, closed by the server", e)
				testutil.Check(t, e.Err != nil, "ConnEnd.Err is nil")
				if tc.wantLog != "" {
					testutil.Eventually(t, func() bool { return strings.Contains(logs.String(), tc.wantLog) }, "log lacks %q:\n%s", tc.wantLog, logs)
				}
			})
		}
	}
}

// TestModesEchoAndPeerClose: messages are handled in order, and the
// peer's close code is what the connection ends with.
func TestModesEchoAndPeerClose(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ends := make(chan wsroute.ConnEnd, 1)
			var returned atomic.Bool
			handle := mode.handle(echoMessage, ends)
			srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				defer returned.Store(true)
				return handle(ctx, c)
			})
			c := dial(t, srv, "/ws", nil)
			ctx := testutil.Ctx(t)
			if mode.detached() {
				// The connection outlives its handler.
				testutil.Eventually(t, returned.Load, "the handler of a detached connection did not return")
			}
			for i := range 50 {
				testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i))))
			}
			for i := range 50 {
				_, got, err := c.Read(ctx)
				testutil.NoErr(t, err)
				testutil.Equal(t, string(got), fmt.Sprint("Echo: ", i))
			}
			testutil.Equal(t, returned.Load(), mode.detached())
			testutil.NoErr(t, c.Close(4100, "bye"))
			e := nextEnd(t, ends)
			testutil.Equal(t, e.Code, wsroute.StatusCode(4100))
			testutil.Equal(t, e.Reason, "bye")
			testutil.Check(t, e.PeerClosed, "PeerClosed is false")
			testutil.Check(t, errors.Is(e.Err, wsroute.ErrClosed), "Err %v does not wrap ErrClosed", e.Err)
		})
	}
}

// TestModesClientVanishes: a peer gone without a close frame ends the
// connection at once, with 1006.
func TestModesClientVanishes(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ends := make(chan wsroute.ConnEnd, 1)
			srv := serve(t, nil, "/ws", mode.handle(echoMessage, ends))
			nc := rawDial(t, srv, "/ws", nil)
			// Half a frame, then a TCP reset.
			nc.Write(frame(true, 0, 1, []byte("hello"), false)[:4])
			nc.(*bufConn).Conn.(*net.TCPConn).SetLinger(0)
			nc.Close()
			e := nextEnd(t, ends)
			testutil.Equal(t, e.Code, wsroute.StatusAbnormalClosure)
			testutil.Check(t, e.PeerClosed, "PeerClosed is false")
		})
	}
}

// TestModesPeerLeavesAnIdleConnection: a peer that leaves a connection
// with nothing to read (with the poller, one that has no reader) ends it
// as it would a connection being read: with its close code, or 1006 when
// it shuts its side or resets without a close frame.
func TestModesPeerLeavesAnIdleConnection(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		for _, tc := range []struct {
			name  string
			leave func(nc net.Conn)
			code  wsroute.StatusCode
		}{
			{"close frame", func(nc net.Conn) {
				nc.Write(frame(true, 0, 0x8, []byte{0x10, 0x04, 'b', 'y', 'e'}, false))
			}, 4100},
			{"FIN", func(nc net.Conn) { nc.(*bufConn).Conn.(*net.TCPConn).CloseWrite() }, wsroute.StatusAbnormalClosure},
			{"RST", func(nc net.Conn) {
				nc.(*bufConn).Conn.(*net.TCPConn).SetLinger(0)
				nc.Close()
			}, wsroute.StatusAbnormalClosure},
		} {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				ends := make(chan wsroute.ConnEnd, 1)
				conns := make(chan *wsroute.Conn, 1)
				handle := mode.handle(echoMessage, ends)
				srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
					conns <- c
					return handle(ctx, c)
				})
				nc := rawDial(t, srv, "/ws", nil)
				defer nc.Close()
				c := <-conns
				if mode == modeEpoll && wsroute.PollSupported {
					testutil.Eventually(t, func() bool { return wsroute.PollArmed(c) }, "the connection never waited in the poller")
				}
				tc.leave(nc)
				e := nextEnd(t, ends)
				testutil.Equal(t, e.Code, tc.code)
				testutil.Check(t, e.PeerClosed, "PeerClosed is false")
				testutil.Check(t, errors.Is(e.Err, wsroute.ErrClosed), "Err %v does not wrap ErrClosed", e.Err)
			})
		}
	}
}

// TestModesDeadPeerIsDetected: a peer that never answers pings is
// closed by the keepalive.
func TestModesDeadPeerIsDetected(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ends := make(chan wsroute.ConnEnd, 1)
			opts := &wsroute.Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}
			srv := serve(t, opts, "/ws", mode.handle(echoMessage, ends))
			nc := rawDial(t, srv, "/ws", nil) // completes the handshake, never answers pings
			defer nc.Close()
			e := nextEnd(t, ends)
			testutil.Check(t, errors.Is(e.Err, wsroute.ErrClosed), "Err %v does not wrap ErrClosed", e.Err)
			testutil.Equal(t, e.Code, wsroute.StatusAbnormalClosure)
		})
	}
}

// TestModesLivePeerSurvivesPings: a peer that answers is pinged, and
// stays.
func TestModesLivePeerSurvivesPings(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			opts := &wsroute.Options{PingInterval: 20 * time.Millisecond, PongTimeout: 5 * time.Second}
			srv := serve(t, opts, "/ws", mode.handle(echoMessage, nil))
			var pings atomic.Int32
			c := dial(t, srv, "/ws", &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
				pings.Add(1)
				return true
			}})
			ctx := testutil.Ctx(t)
			// The client reads all the time, as a live peer does, so
			// every ping is answered as soon as it arrives.
			reads := make(chan string, 1)
			go func() {
				defer close(reads)
				for {
					_, msg, err := c.Read(ctx)
					if err != nil {
						return
					}
					reads <- string(msg)
				}
			}()
			for i := range 3 {
				seen := pings.Load()
				testutil.Eventually(t, func() bool { return pings.Load() >= seen+3 }, "round %d: %d pings", i, pings.Load()-seen)
				testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("x")))
				testutil.Equal(t, <-reads, "Echo: x")
			}
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

// TestModesTrackerShutdown: Shutdown closes every connection with 1001
// and returns once each has ended, detached or not; connections that
// come after it are told the same.
func TestModesTrackerShutdown(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			const n = 5
			tr := wsroute.NewTracker()
			var ended atomic.Int32
			handle := mode.handle(echoMessage, nil)
			srv := serve(t, &wsroute.Options{Tracker: tr}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				c.OnEnd(func(wsroute.ConnEnd) { ended.Add(1) })
				return handle(ctx, c)
			})
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
			testutil.Equal(t, ended.Load(), int32(n))
			testutil.Equal(t, tr.Len(), 0)
			wg.Wait()
			close(codes)
			for code := range codes {
				testutil.Equal(t, code, websocket.StatusGoingAway)
			}

			// New connections after the shutdown are told the same.
			c := dial(t, srv, "/ws", nil)
			code, _ := readClose(t, c)
			testutil.Equal(t, code, websocket.StatusGoingAway)
		})
	}
}

type ctxKey struct{}

// TestDetachContext: fn sees the handler's values, and a middleware's
// cancellation, which ends with the handler, does not end the connection.
func TestDetachContext(t *testing.T) {
	t.Parallel()
	got := make(chan any, 1)
	fn := func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		got <- ctx.Value(ctxKey{})
		return c.SendText(ctx, "ok")
	}
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		ctx, cancel := context.WithCancel(context.WithValue(ctx, ctxKey{}, "v"))
		defer cancel()
		return modeDetached.handle(fn, nil)(ctx, c)
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	for range 2 {
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("x")))
		_, msg, err := c.Read(ctx)
		testutil.NoErr(t, err)
		testutil.Equal(t, string(msg), "ok")
		testutil.Equal(t, <-got, any("v"))
	}
}

// TestDetachMisuse: Detach refuses what it cannot honour, and a handler
// that fails after Detach ends its connection as without it.
func TestDetachMisuse(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 8)
	late := make(chan *wsroute.Conn, 1)
	var ran atomic.Bool
	fn := func(context.Context, *wsroute.Conn, wsroute.Message) error {
		ran.Store(true)
		return nil
	}
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		errs <- c.Detach(ctx, fn) // before Accept
		if err := c.Accept(ctx); err != nil {
			return err
		}
		switch c.Query("case") {
		case "twice":
			errs <- c.Detach(ctx, fn)
			errs <- c.Detach(ctx, fn)
		case "closeread":
			c.CloseRead()
			errs <- c.Detach(ctx, fn)
			return nil
		case "late":
			late <- c
			return nil
		}
		return &wsroute.CloseError{Code: 4005, Reason: "failed after Detach"}
	})

	c := dial(t, srv, "/ws?case=twice", nil)
	testutil.Check(t, errors.Is(<-errs, wsroute.ErrNotAccepted), "Detach before Accept did not fail with ErrNotAccepted")
	testutil.NoErr(t, <-errs)
	testutil.Check(t, <-errs != nil, "a second Detach did not fail")
	testutil.NoErr(t, c.Write(testutil.Ctx(t), websocket.MessageText, []byte("x")))
	code, reason := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusCode(4005))
	testutil.Equal(t, reason, "failed after Detach")
	testutil.Check(t, !ran.Load(), "fn ran although the handler failed after Detach")

	c = dial(t, srv, "/ws?case=closeread", nil)
	<-errs
	testutil.Check(t, <-errs != nil, "Detach after CloseRead did not fail")
	code, _ = readClose(t, c)
	testutil.Equal(t, code, websocket.StatusNormalClosure)

	c = dial(t, srv, "/ws?case=late", nil)
	<-errs
	lc := <-late
	code, _ = readClose(t, c)
	testutil.Equal(t, code, websocket.StatusNormalClosure)
	err := lc.Detach(context.Background(), fn)
	testutil.Check(t, err != nil, "Detach after the handler returned did not fail")
}

// TestDetachedIdleWaitsShallow pins assumption 12 of coder.go: between
// messages, a detached connection's reader waits outside
// coder/websocket's read chain, also after control frames came (the
// peer's pings, answered), which needs coder/websocket to return a read
// error at a frame boundary without closing the connection. If it
// closed, the echo after the pings would fail; if wsroute waited inside
// coder/websocket, the reader would be parked in readLoop. It is not
// parallel: it reads every goroutine's stack.
func TestDetachedIdleWaitsShallow(t *testing.T) {
	srv := serve(t, nil, "/ws", modeDetached.handle(echoMessage, nil))
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	reads := readTexts(ctx, c)
	for i := range 3 {
		testutil.NoErr(t, c.Ping(ctx)) // the server's reader answers it
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i))))
		testutil.Equal(t, <-reads, fmt.Sprint("Echo: ", i))
		testutil.NoErr(t, c.Ping(ctx))
		testutil.Eventually(t, func() bool {
			shallow, deep := detachedReaders()
			return shallow == 1 && deep == 0
		}, "the detached reader is not waiting in guardedConn.wait after a ping:\n%s", allStacks())
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestDetachedIdleHasNoGoroutine: on Linux, an idle detached connection
// has no goroutine at all, between messages and after the peer's pings
// (answered) and the server's (whose pongs come back); the poller starts
// its reader when the peer sends again. The poller itself runs only
// while connections are registered. It is not parallel: it reads every
// goroutine's stack.
func TestDetachedIdleHasNoGoroutine(t *testing.T) {
	if !wsroute.PollSupported {
		t.Skip("no poller on this system")
	}
	opts := &wsroute.Options{PingInterval: 20 * time.Millisecond, PongTimeout: 5 * time.Second}
	srv := serve(t, opts, "/ws", modeEpoll.handle(echoMessage, nil))
	var pings atomic.Int32
	c := dial(t, srv, "/ws", &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true
	}})
	ctx := testutil.Ctx(t)
	reads := readTexts(ctx, c)
	for i := range 3 {
		testutil.NoErr(t, c.Ping(ctx)) // the server's reader answers it
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i))))
		testutil.Equal(t, <-reads, fmt.Sprint("Echo: ", i))
		// The server's pings are answered: once they came, the reader
		// has read a pong with no message since, and is gone.
		seen := pings.Load()
		testutil.Eventually(t, func() bool { return pings.Load() >= seen+2 }, "round %d: no pings", i)
		testutil.Eventually(t, func() bool {
			readers, pollers := detachedGoroutines()
			return readers == 0 && pollers == 1
		}, "round %d: an idle detached connection has a goroutine, or no poller serves it:\n%s", i, allStacks())
	}
	c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool {
		readers, pollers := detachedGoroutines()
		return readers == 0 && pollers == 0
	}, "the poller outlived its last connection:\n%s", allStacks())
}

// TestPollerWakeWithNothingToRead: a reader the poller starts with
// nothing to read (a wakeup whose bytes another read took, as a close
// handshake's may) puts the connection back in the poller, which then
// serves it as before.
func TestPollerWakeWithNothingToRead(t *testing.T) {
	t.Parallel()
	if !wsroute.PollSupported {
		t.Skip("no poller on this system")
	}
	ends := make(chan wsroute.ConnEnd, 1)
	conns := make(chan *wsroute.Conn, 1)
	handle := modeEpoll.handle(echoMessage, ends)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		conns <- c
		return handle(ctx, c)
	})
	ws := dial(t, srv, "/ws", nil)
	c := <-conns
	ctx := testutil.Ctx(t)
	reads := readTexts(ctx, ws)
	for i := range 3 {
		testutil.Eventually(t, func() bool { return wsroute.PollArmed(c) }, "round %d: the connection is not in the poller", i)
		wsroute.PollWake(c)
		testutil.Eventually(t, func() bool { return wsroute.PollArmed(c) }, "round %d: woken with nothing to read, the connection did not go back to the poller", i)
		testutil.NoErr(t, ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i))))
		testutil.Equal(t, <-reads, fmt.Sprint("Echo: ", i))
		testutil.NoErr(t, ws.Ping(ctx)) // a wait that brings only the ping: back to the poller
	}
	ws.Close(4100, "bye")
	e := nextEnd(t, ends)
	testutil.Equal(t, e.Code, wsroute.StatusCode(4100))
}

// TestDetachedOverTLS: a detached connection whose socket the poller
// cannot read (TLS: the bytes must go through crypto/tls) waits on a
// goroutine of its own, and behaves as any other: echoes, answers pings
// when idle, and ends with the peer's code.
func TestDetachedOverTLS(t *testing.T) {
	t.Parallel()
	ends := make(chan wsroute.ConnEnd, 1)
	conns := make(chan *wsroute.Conn, 1)
	handle := modeEpoll.handle(echoMessage, ends)
	opts := &wsroute.Options{PingInterval: 20 * time.Millisecond, PongTimeout: 5 * time.Second}
	srv := httptest.NewTLSServer(opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		conns <- c
		return handle(ctx, c)
	}))
	t.Cleanup(srv.Close)
	ctx := testutil.Ctx(t)
	var pings atomic.Int32
	ws, _, err := websocket.Dial(ctx, wsURL(srv, "/"), &websocket.DialOptions{
		HTTPClient: srv.Client(),
		OnPingReceived: func(context.Context, []byte) bool {
			pings.Add(1)
			return true
		},
	})
	testutil.NoErr(t, err)
	c := <-conns
	reads := readTexts(ctx, ws)
	for i := range 3 {
		testutil.NoErr(t, ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprint(i))))
		testutil.Equal(t, <-reads, fmt.Sprint("Echo: ", i))
		seen := pings.Load()
		testutil.Eventually(t, func() bool { return pings.Load() >= seen+2 }, "round %d: no pings", i)
		testutil.Check(t, !wsroute.PollArmed(c), "a TLS connection waits in the poller")
	}
	ws.Close(4100, "bye")
	e := nextEnd(t, ends)
	testutil.Equal(t, e.Code, wsroute.StatusCode(4100))
}

// readTexts reads c's messages into the channel it returns, answering
// the server's pings and reading its pongs meanwhile, until a read fails
// or ctx ends; then it closes the channel.
func readTexts(ctx context.Context, c *websocket.Conn) <-chan string {
	reads := make(chan string)
	go func() {
		defer close(reads)
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			select {
			case reads <- string(msg):
			case <-ctx.Done():
				return
			}
		}
	}()
	return reads
}

// detachedGoroutines counts the goroutines of detached readers, and the
// poller's.
func detachedGoroutines() (readers, pollers int) {
	for g := range strings.SplitSeq(allStacks(), "\n\n") {
		switch {
		case strings.Contains(g, "wsroute.(*Conn).readDetached"), strings.Contains(g, "wsroute.(*Conn).readPolled"):
			readers++
		case strings.Contains(g, "wsroute.pollLoop"):
			pollers++
		}
	}
	return readers, pollers
}

// detachedReaders counts the detached readers waiting for the peer in
// wsroute's shallow wait, and those waiting inside coder/websocket.
func detachedReaders() (shallow, deep int) {
	for g := range strings.SplitSeq(allStacks(), "\n\n") {
		if !strings.Contains(g, "wsroute.(*Conn).readDetached") {
			continue
		}
		switch {
		case strings.Contains(g, "websocket.(*Conn).readLoop"):
			deep++
		case strings.Contains(g, "wsroute.(*guardedConn).wait"):
			shallow++
		}
	}
	return shallow, deep
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// BenchmarkEchoModes is a round trip of 64 bytes through a handler's
// Receive loop and through a detached connection: the cost of Detach on
// a connection that talks.
func BenchmarkEchoModes(b *testing.B) {
	for _, mode := range modes {
		b.Run(string(mode), func(b *testing.B) {
			srv := httptest.NewServer(wsroute.Handle(mode.handle(func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
				return c.Send(ctx, m.Type, m.Data)
			}, nil)))
			b.Cleanup(srv.Close)
			c := dial(b, srv, "/", nil)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

// TestModesMessagesInOneWrite: messages, pings and a large message that
// arrive in one segment are all handled, in order, without waiting for
// more from the peer: the detached reader waits only when nothing read
// is pending (guardedConn.pending).
func TestModesMessagesInOneWrite(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			srv := serve(t, nil, "/ws", mode.handle(echoMessage, nil))
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			var burst []byte
			var want []string
			for i := range 20 {
				msg := fmt.Sprint(i)
				if i == 10 {
					msg = strings.Repeat("x", 10000)
				}
				burst = append(burst, frame(true, 0, 0x9, []byte("p"), false)...)
				burst = append(burst, frame(true, 0, 0x1, []byte(msg), false)...)
				want = append(want, "Echo: "+msg)
			}
			_, err := nc.Write(burst)
			testutil.NoErr(t, err)
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := nc.(*bufConn).br
			for len(want) > 0 {
				f, err := readWireFrame(br)
				testutil.NoErr(t, err)
				if f.opcode == 0xA {
					continue
				}
				testutil.Equal(t, string(f.payload), want[0])
				want = want[1:]
			}
		})
	}
}

// TestDetachedCloseFromElsewhere closes detached connections from another
// goroutine while their reader starts, moves between waits, or goes back
// to waiting after a message, against a peer that never answers the close
// frame: coder/websocket's close handshake then reads the socket while the
// reader may be about to wait (or, with the poller, while the connection
// has no reader, or one is starting). The race detector, and the end of
// every connection, are the judges.
func TestDetachedCloseFromElsewhere(t *testing.T) {
	t.Parallel()
	for _, mode := range []serveMode{modeDetached, modeEpoll} {
		for _, tc := range []struct {
			name string
			send []byte // what the peer sends before the Close, if anything
		}{
			{"at the hand-over", nil},
			{"after a ping", frame(true, 0, 0x9, []byte("p"), false)},
			{"after a message", frame(true, 0, 0x1, []byte("hello"), false)},
		} {
			t.Run(string(mode)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				conns := make(chan *wsroute.Conn, 1)
				ends := make(chan wsroute.ConnEnd, 1)
				srv := serve(t, &wsroute.Options{CloseTimeout: 200 * time.Millisecond}, "/",
					func(ctx context.Context, c *wsroute.Conn) error {
						c.OnEnd(func(e wsroute.ConnEnd) { ends <- e })
						if err := c.Accept(ctx); err != nil {
							return err
						}
						conns <- c
						if mode == modeDetached {
							wsroute.DetachWithoutPoller(c)
						}
						return c.Detach(ctx, echoMessage)
					})
				for range 20 {
					nc := rawDial(t, srv, "/", nil)
					drained := make(chan struct{})
					go func() { // a peer that reads everything and answers nothing
						defer close(drained)
						b := make([]byte, 512)
						for {
							if _, err := nc.Read(b); err != nil {
								return
							}
						}
					}()
					c := <-conns
					if tc.send != nil {
						_, err := nc.Write(tc.send)
						testutil.NoErr(t, err)
					}
					c.Close(wsroute.StatusNormalClosure, "bye")
					nextEnd(t, ends)
					nc.Close()
					<-drained
				}
			})
		}
	}
}
