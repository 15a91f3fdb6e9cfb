package wsroute_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestOrigin(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name   string
		opts   *wsroute.Options
		origin string
		wantOK bool
	}{
		{name: "no origin (not a browser)", origin: "", wantOK: true},
		{name: "same origin", origin: "SAME", wantOK: true},
		{name: "foreign origin", origin: "https://evil.example", wantOK: false},
		{name: "unparsable origin", origin: "::::", wantOK: false},
		{name: "allowed pattern", opts: &wsroute.Options{OriginPatterns: []string{"*.example.com"}}, origin: "https://app.example.com", wantOK: true},
		{name: "pattern with scheme", opts: &wsroute.Options{OriginPatterns: []string{"https://app.example.com"}}, origin: "http://app.example.com", wantOK: false},
		{name: "skip verify", opts: &wsroute.Options{InsecureSkipVerify: true}, origin: "https://evil.example", wantOK: true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var called atomic.Bool
			srv := serve(t, tc.opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				called.Store(true)
				return c.Accept(ctx)
			})
			h := http.Header{}
			// A cookie-authenticated page on a foreign site: the browser
			// sends the cookie along, only Origin tells them apart.
			h.Set("Cookie", "session=secret")
			switch tc.origin {
			case "":
			case "SAME":
				h.Set("Origin", srv.URL)
			default:
				h.Set("Origin", tc.origin)
			}
			c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{HTTPHeader: h})
			if tc.wantOK {
				testutil.NoErr(t, err)
				c.CloseNow()
				return
			}
			testutil.Check(t, err != nil, "dial succeeded from a foreign origin")
			testutil.Equal(t, resp.StatusCode, http.StatusForbidden)
			testutil.Check(t, !called.Load(), "handler ran for a refused origin")
		})
	}
}

func TestBadHandshakes(t *testing.T) {
	t.Parallel()
	var called atomic.Bool
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		called.Store(true)
		return c.Accept(ctx)
	})
	testCases := []struct {
		name   string
		mutate func(h http.Header)
		method string
		want   int
	}{
		{name: "bad version", mutate: func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, want: 400},
		{name: "bad key", mutate: func(h http.Header) { h.Set("Sec-WebSocket-Key", "short") }, want: 400},
		{name: "no key", mutate: func(h http.Header) { h.Del("Sec-WebSocket-Key") }, want: 400},
		{name: "POST", method: http.MethodPost, want: 405},
		{name: "no upgrade header", mutate: func(h http.Header) { h.Del("Upgrade") }, want: 426},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, srv.URL+"/ws", nil)
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			if tc.mutate != nil {
				tc.mutate(req.Header)
			}
			resp, err := http.DefaultClient.Do(req)
			testutil.NoErr(t, err)
			resp.Body.Close()
			testutil.Equal(t, resp.StatusCode, tc.want)
		})
	}
	testutil.Check(t, !called.Load(), "handler ran for a bad handshake")
}

func TestSubprotocols(t *testing.T) {
	t.Parallel()
	handler := func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, "["+c.Subprotocol()+"]")
	}
	opts := &wsroute.Options{Subprotocols: []string{"chat.v2", "chat.v1"}}
	srv := serve(t, opts, "/ws", handler)
	for offer, want := range map[string]string{"chat.v1": "chat.v1", "other": "", "other,chat.v2": "chat.v2"} {
		c := dial(t, srv, "/ws", &websocket.DialOptions{Subprotocols: strings.Split(offer, ",")})
		_, got, err := c.Read(testutil.Ctx(t))
		testutil.NoErr(t, err)
		testutil.Equal(t, string(got), "["+want+"]")
		testutil.Equal(t, c.Subprotocol(), want)
	}
	strict := serve(t, &wsroute.Options{Subprotocols: []string{"chat.v1"}, RequireSubprotocol: true}, "/ws", handler)
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(strict, "/ws"), &websocket.DialOptions{Subprotocols: []string{"other"}})
	testutil.Check(t, err != nil, "dial without a supported subprotocol succeeded")
	testutil.Equal(t, resp.StatusCode, http.StatusBadRequest)

	// The handler picks: the token-in-subprotocol pattern of browsers.
	pick := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		offers := c.Subprotocols()
		if err := c.AcceptWith(ctx, wsroute.AcceptParams{Subprotocol: offers[len(offers)-1], Header: http.Header{"X-Node": {"a"}}}); err != nil {
			return err
		}
		return c.SendText(ctx, c.Subprotocol())
	})
	c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(pick, "/ws"), &websocket.DialOptions{Subprotocols: []string{"bearer", "tok123"}})
	testutil.NoErr(t, err)
	testutil.Equal(t, resp.Header.Get("X-Node"), "a")
	_, got, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "tok123")
	c.CloseNow()
}

func TestClientVanishes(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		_, err := c.ReceiveText(ctx)
		errs <- err
		return err
	})
	nc := rawDial(t, srv, "/ws", nil)
	// Half a frame, then a TCP reset.
	nc.Write(frame(true, 0, 1, []byte("hello"), false)[:4])
	nc.(*bufConn).Conn.(*net.TCPConn).SetLinger(0)
	nc.Close()
	select {
	case err := <-errs:
		testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "Receive error %v does not wrap ErrClosed", err)
		testutil.Equal(t, wsroute.CloseStatus(err), -1)
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return after the client vanished")
	}
}

func TestMalformedFrames(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name  string
		bytes []byte
	}{
		{name: "reserved bits", bytes: frame(true, 0b100, 1, []byte("x"), false)},
		{name: "unmasked", bytes: frame(true, 0, 1, []byte("x"), true)},
		{name: "oversized control frame", bytes: frame(true, 0, 9, make([]byte, 200), false)},
		{name: "fragmented control frame", bytes: frame(false, 0, 9, []byte("p"), false)},
		{name: "bad opcode", bytes: frame(true, 0, 3, []byte("x"), false)},
		{name: "continuation first", bytes: frame(true, 0, 0, []byte("x"), false)},
		{name: "bad close code", bytes: frame(true, 0, 8, []byte{0x03, 0xed}, false)},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, _ := testLogger(t)
			errs := make(chan error, 1)
			srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				testutil.NoErr(t, c.Accept(ctx))
				_, err := c.ReceiveText(ctx)
				errs <- err
				return err
			})
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			_, err := nc.Write(tc.bytes)
			testutil.NoErr(t, err)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(nc)
			op, payload, err := readFrame(br)
			if err == nil {
				testutil.Equal(t, op, byte(8))
				testutil.Check(t, len(payload) >= 2, "close frame without a code")
				code := binary.BigEndian.Uint16(payload)
				testutil.Equal(t, code, uint16(websocket.StatusProtocolError))
			}
			// Or no code at all: the connection just ends. Never 1011.
			select {
			case err := <-errs:
				testutil.Check(t, err != nil, "Receive returned no error")
			case <-time.After(5 * time.Second):
				t.Fatal("Receive did not return")
			}
		})
	}
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	srv := serve(t, &wsroute.Options{ReadLimit: 10}, "/ws", echo)
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("0123456789")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: 0123456789")
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("0123456789a")))
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusMessageTooBig)
}

func TestClientStopsReading(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	srv := serve(t, &wsroute.Options{WriteTimeout: 200 * time.Millisecond}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		big := make([]byte, 64<<10)
		for i := 0; i < 10000; i++ { // bounded: 640 MiB is far beyond any socket buffer
			if err := c.SendBytes(ctx, big); err != nil {
				errs <- err
				return err
			}
		}
		errs <- nil
		return nil
	})
	nc := rawDial(t, srv, "/ws", nil) // never reads
	defer nc.Close()
	select {
	case err := <-errs:
		testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "send error %v does not wrap ErrClosed", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a client that stopped reading blocked the sender")
	}
}

// TestSendContextBoundsTheCall: a Send whose own context ends while the
// peer does not read returns then, not after WriteTimeout.
func TestSendContextBoundsTheCall(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 1)
	srv := serve(t, &wsroute.Options{WriteTimeout: time.Minute}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		big := make([]byte, 1<<20)
		for i := 0; i < 1000; i++ { // bounded: 1 GiB is beyond any socket buffer
			if err := c.SendBytes(sctx, big); err != nil {
				errs <- err
				return err
			}
		}
		errs <- nil
		return nil
	})
	nc := rawDial(t, srv, "/ws", nil) // never reads
	defer nc.Close()
	select {
	case err := <-errs:
		testutil.Check(t, errors.Is(err, context.DeadlineExceeded), "error %v does not wrap DeadlineExceeded", err)
		testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "error %v does not wrap ErrClosed", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Send ignored its context")
	}
}
