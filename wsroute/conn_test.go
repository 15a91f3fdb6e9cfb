package wsroute_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestRequestAccessorsAndState(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := serve(t, nil, "/ws/{room}", func(ctx context.Context, c *wsroute.Conn) error {
		c.Set("name", "ann")
		v, ok := c.Get("name")
		_, missing := c.Get("nope")
		got <- fmt.Sprintf("%s|%s|%s|%s|%v|%v|%d|%v", c.Param("room"), c.Query("x"), c.Header().Get("X-Test"),
			c.ClientIP(), v, ok && !missing, len(c.ID()), c.URL().Path)
		return c.Accept(ctx)
	})
	c := dial(t, srv, "/ws/lobby?x=1", &websocket.DialOptions{HTTPHeader: http.Header{"X-Test": {"yes"}}})
	c.CloseNow()
	testutil.Equal(t, <-got, "lobby|1|yes|127.0.0.1|ann|true|22|/ws/lobby")
}

func TestIDsAreUnique(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 50)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		ids <- c.ID()
		testutil.Equal(t, c.ID(), c.ID())
		return c.Reject(http.StatusNoContent, "")
	})
	seen := map[string]bool{}
	for range 50 {
		websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
		id := <-ids
		testutil.Check(t, !seen[id], "duplicate ID %q", id)
		seen[id] = true
	}
}

func TestMessagesIterator(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			if err := c.Send(ctx, msg.Type, append([]byte(msg.Type.String()+":"), msg.Data...)); err != nil {
				return err
			}
		}
		return nil
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("a")))
	testutil.NoErr(t, c.Write(ctx, websocket.MessageBinary, []byte{0}))
	_, m1, err := c.Read(ctx)
	testutil.NoErr(t, err)
	typ, m2, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(m1), "text:a")
	testutil.Equal(t, typ, websocket.MessageBinary)
	testutil.Equal(t, string(m2), "binary:\x00")
	c.Close(websocket.StatusNormalClosure, "")
}

func TestJSON(t *testing.T) {
	t.Parallel()
	type msg struct {
		N    int    `json:"n"`
		Text string `json:"text"`
	}
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		var m msg
		if err := c.ReceiveJSON(ctx, &m); err != nil {
			return err
		}
		m.N++
		return c.SendJSON(ctx, m)
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(`{"n":41,"text":"hi"}`)))
	typ, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, typ, websocket.MessageText)
	testutil.Equal(t, string(got), `{"n":42,"text":"hi"}`)
}

func TestReceiveBytes(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		b, err := c.ReceiveBytes(ctx)
		if err != nil {
			return err
		}
		if err := c.SendBytes(ctx, b); err != nil {
			return err
		}
		_, err = c.ReceiveBytes(ctx)
		return err
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "\x01\x02\x03")
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("text")))
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusUnsupportedData)
}

func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	const senders, each = 8, 200
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		var wg sync.WaitGroup
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range each {
					if err := c.SendText(ctx, fmt.Sprintf("%d-%d", i, j)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		_, err := c.ReceiveText(ctx)
		return err
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	next := make([]int, senders)
	for range senders * each {
		_, b, err := c.Read(ctx)
		testutil.NoErr(t, err)
		var i, j int
		_, err = fmt.Sscanf(string(b), "%d-%d", &i, &j)
		testutil.NoErr(t, err)
		testutil.Equal(t, j, next[i]) // each sender's messages arrive in its order
		next[i]++
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestSendOnlyHandlerSeesClientLeave(t *testing.T) {
	t.Parallel()
	left := make(chan error, 1)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		c.CloseRead()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-c.Done():
				left <- c.SendText(context.Background(), "too late")
				return nil
			case <-tick.C:
				if err := c.SendText(ctx, "tick"); err != nil {
					left <- err
					return err
				}
			}
		}
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	_, _, err := c.Read(ctx)
	testutil.NoErr(t, err)
	// Pings are answered although the handler never calls Receive.
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	go func() { // the client must read for its pong to be seen
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	testutil.NoErr(t, c.Ping(pingCtx))
	c.Close(websocket.StatusNormalClosure, "bye")
	select {
	case err := <-left:
		testutil.Check(t, err != nil, "send after the client left succeeded")
	case <-time.After(5 * time.Second):
		t.Fatal("send-only handler did not see the client leave")
	}
}

func TestCloseReadRejectsDataMessages(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		c.CloseRead()
		<-c.Done()
		return nil
	})
	c := dial(t, srv, "/ws", nil)
	testutil.NoErr(t, c.Write(testutil.Ctx(t), websocket.MessageText, []byte("hi")))
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusPolicyViolation)
}

func TestDeadPeerIsDetected(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	opts := &wsroute.Options{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}
	srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		_, err := c.ReceiveText(ctx)
		errs <- err
		return err
	})
	nc := rawDial(t, srv, "/ws", nil) // completes the handshake, never answers pings
	defer nc.Close()
	select {
	case err := <-errs:
		testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "error %v does not wrap ErrClosed", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a peer that never answered pings was not detected")
	}
}

func TestLivePeerSurvivesPings(t *testing.T) {
	t.Parallel()
	// Pings go out one at a time: the next only after the last one's pong
	// (or its PongTimeout). So a peer that sees many pings has had each
	// one's pong counted, and a keepalive that missed pongs would stall
	// and then cut the connection. The PongTimeout is not what this test
	// is about: it is generous, so a loaded machine that is slow to answer
	// a ping is not taken for a dead peer.
	opts := &wsroute.Options{PingInterval: 20 * time.Millisecond, PongTimeout: 5 * time.Second}
	srv := serve(t, opts, "/ws", echo)
	var pings atomic.Int32
	c := dial(t, srv, "/ws", &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true
	}})
	ctx := testutil.Ctx(t)
	// The client reads all the time, as a live peer does, so every ping
	// is answered as soon as it arrives.
	type read struct {
		msg string
		err error
	}
	reads := make(chan read, 1)
	go func() {
		for {
			_, msg, err := c.Read(ctx)
			select {
			case reads <- read{string(msg), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for range 10 {
		// Two pings, answered, between messages.
		seen := pings.Load()
		testutil.Eventually(t, func() bool { return pings.Load() >= seen+2 || len(reads) > 0 },
			"%d pings in %v", pings.Load()-seen, testutil.EventuallyTimeout)
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("x")))
		r := <-reads
		testutil.NoErr(t, r.err)
		testutil.Equal(t, r.msg, "Echo: x")
	}
	testutil.Check(t, pings.Load() >= 20, "%d pings", pings.Load())
	c.Close(websocket.StatusNormalClosure, "")
	r := <-reads // the reader ends with the connection
	testutil.Check(t, r.err != nil, "read %q after close", r.msg)
}

func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	acceptErr := make(chan error, 1)
	srv := serve(t, &wsroute.Options{HandshakeTimeout: 50 * time.Millisecond}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		<-ctx.Done() // a slow auth lookup that honours ctx
		acceptErr <- c.Accept(context.Background())
		return nil
	})
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.Check(t, err != nil, "dial succeeded")
	testutil.Equal(t, resp.StatusCode, http.StatusServiceUnavailable)
	testutil.Check(t, errors.Is(<-acceptErr, wsroute.ErrHandshakeTimeout), "Accept after the timeout did not fail")
}

func TestReceiveContextBoundsTheCall(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		// Idle: nothing is on the wire when the call's ctx expires.
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := c.ReceiveText(rctx)
		errs <- err
		<-c.Done() // the connection is over, not just the call
		return err
	})
	c := dial(t, srv, "/ws", nil)
	err := <-errs
	testutil.Check(t, errors.Is(err, context.DeadlineExceeded), "error %v does not wrap DeadlineExceeded", err)
	testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "error %v does not wrap ErrClosed", err)
	// The client sees the connection end (docs/guide.md, per-call timeouts).
	_, _, rerr := c.Read(testutil.Ctx(t))
	testutil.Check(t, rerr != nil, "the connection outlived the expired Receive")
	c.CloseNow()
}

// countingListener counts the write system calls made on accepted
// connections, to see batching from outside the library.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

func TestSendBatchIsOneWriteAndSeparateFrames(t *testing.T) {
	t.Parallel()
	const n = 100
	sent := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		msgs := make([]wsroute.Message, n)
		for i := range msgs {
			msgs[i] = wsroute.Message{Type: wsroute.MessageText, Data: []byte(fmt.Sprintf("message %03d", i))}
		}
		<-sent // start counting from here
		testutil.NoErr(t, c.SendBatch(ctx, msgs))
		_, err := c.ReceiveText(ctx)
		return err
	}))
	srv := httptest.NewUnstartedServer(mux)
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	defer srv.Close()

	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	before := cl.writes.Load()
	close(sent)
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		op, payload, err := readFrame(br)
		testutil.NoErr(t, err)
		testutil.Equal(t, op, byte(1)) // each message is its own complete text frame
		testutil.Equal(t, string(payload), fmt.Sprintf("message %03d", i))
	}
	writes := cl.writes.Load() - before
	testutil.Check(t, writes >= 1 && writes < n/10, "%d messages took %d socket writes", n, writes)
}

// TestSendOnlyHandlerSeesClientVanish: a client that drops the TCP
// connection without a close frame ends Done at once too.
func TestSendOnlyHandlerSeesClientVanish(t *testing.T) {
	t.Parallel()
	left := make(chan struct{})
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		if err := c.SendText(ctx, "hello"); err != nil {
			return err
		}
		c.CloseRead()
		<-c.Done()
		close(left)
		return nil
	})
	c := dial(t, srv, "/ws", nil)
	_, _, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	c.CloseNow()
	select {
	case <-left:
	case <-time.After(5 * time.Second):
		t.Fatal("send-only handler did not see the client vanish")
	}
}

// TestFrameSizes crosses every frame-length encoding, with and without
// compression (where coder/websocket writes the frames).
func TestFrameSizes(t *testing.T) {
	t.Parallel()
	for _, comp := range []wsroute.CompressionMode{wsroute.CompressionDisabled, wsroute.CompressionNoContextTakeover, wsroute.CompressionContextTakeover} {
		t.Run(fmt.Sprint("compression=", comp), func(t *testing.T) {
			t.Parallel()
			opts := &wsroute.Options{ReadLimit: 1 << 20, Compression: comp}
			srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				testutil.NoErr(t, c.Accept(ctx))
				var batch []wsroute.Message
				for msg, err := range c.Messages(ctx) {
					if err != nil {
						return err
					}
					if err := c.Send(ctx, msg.Type, msg.Data); err != nil {
						return err
					}
					batch = append(batch, msg)
					if len(batch) == 3 {
						if err := c.SendBatch(ctx, batch); err != nil {
							return err
						}
						batch = nil
					}
				}
				return nil
			})
			c := dial(t, srv, "/ws", &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
			c.SetReadLimit(-1)
			ctx := testutil.Ctx(t)
			sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000}
			var sent [][]byte
			for i, n := range sizes {
				p := make([]byte, n)
				for j := range p {
					p[j] = byte('a' + (i+j)%26)
				}
				typ := websocket.MessageBinary
				if i%2 == 0 {
					typ = websocket.MessageText
				}
				testutil.NoErr(t, c.Write(ctx, typ, p))
				sent = append(sent, p)
				_, got, err := c.Read(ctx)
				testutil.NoErr(t, err)
				testutil.Check(t, string(got) == string(p), "size %d: echo differs", n)
				if len(sent) == 3 {
					for _, want := range sent {
						_, got, err := c.Read(ctx)
						testutil.NoErr(t, err)
						testutil.Check(t, string(got) == string(want), "batched size %d differs", len(want))
					}
					sent = nil
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}
