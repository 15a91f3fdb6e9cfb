package wsroute_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestCloseReasonIsCutAtUTF8Boundary(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100) // 200 bytes
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		return c.Close(4000, long)
	})
	c := dial(t, srv, "/ws", nil)
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4000)
	testutil.Check(t, len(reason) <= wsroute.MaxCloseReason, "reason is %d bytes", len(reason))
	testutil.Check(t, len(reason) >= wsroute.MaxCloseReason-1, "reason cut too short: %d bytes", len(reason))
	testutil.Check(t, utf8.ValidString(reason), "reason is not valid UTF-8: %q", reason)
	testutil.Check(t, strings.HasPrefix(long, reason), "reason is not a prefix")
}

func TestCloseRefusesCodesThatMayNotBeSent(t *testing.T) {
	t.Parallel()
	bad := []wsroute.StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		for _, code := range bad {
			if err := c.Close(code, "x"); !errors.Is(err, wsroute.ErrInvalidCloseCode) {
				t.Errorf("Close(%d) = %v, want ErrInvalidCloseCode", code, err)
			}
		}
		return echoLoop(ctx, c) // the connection is still open
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("open?")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: open?")
	c.Close(websocket.StatusNormalClosure, "")
}

func TestCloseIsIdempotentAndHarmlessAfterClientLeft(t *testing.T) {
	t.Parallel()
	results := make(chan error, 3)
	srv := serve(t, nil, "/ws/lifecycle", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		// The Nexio lifecycle example: finally close(1000).
		defer func() { results <- c.Close(wsroute.StatusNormalClosure, "Client disconnected") }()
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				results <- err
				results <- c.Close(wsroute.StatusNormalClosure, "again")
				return nil
			}
			if err := c.SendText(ctx, "Received: "+msg); err != nil {
				return err
			}
		}
	})
	c := dial(t, srv, "/ws/lifecycle", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Received: hi")
	testutil.NoErr(t, c.Close(websocket.StatusGoingAway, "bye"))
	recvErr := <-results
	testutil.Check(t, errors.Is(recvErr, wsroute.ErrClosed), "Receive error %v does not wrap ErrClosed", recvErr)
	testutil.Equal(t, wsroute.CloseStatus(recvErr), wsroute.StatusGoingAway)
	testutil.NoErr(t, <-results)
	testutil.NoErr(t, <-results)
}

func TestCloseIsBounded(t *testing.T) {
	t.Parallel()
	took := make(chan time.Duration, 1)
	srv := serve(t, &wsroute.Options{CloseTimeout: 200 * time.Millisecond}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		start := time.Now()
		c.Close(wsroute.StatusNormalClosure, "")
		took <- time.Since(start)
		return nil
	})
	// A raw client that completes the handshake and then never answers.
	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	d := <-took
	testutil.Check(t, d < 5*time.Second, "Close took %v with CloseTimeout 200ms", d)
}

func TestCloseStatus(t *testing.T) {
	t.Parallel()
	testutil.Equal(t, wsroute.CloseStatus(nil), -1)
	testutil.Equal(t, wsroute.CloseStatus(errors.New("x")), -1)
	testutil.Equal(t, wsroute.CloseStatus(&wsroute.CloseError{Code: 4001}), 4001)
	testutil.Equal(t, wsroute.CloseStatus(websocket.CloseError{Code: 1001}), 1001)
}

// TestCloseBeforeAcceptEchoesASubprotocol: a browser that offered
// subprotocols fails a 101 without one, and would never see the code.
func TestCloseBeforeAcceptEchoesASubprotocol(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		return c.Close(4001, "Unauthorized")
	})
	c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{Subprotocols: []string{"bearer", "tok"}})
	testutil.NoErr(t, err)
	defer c.CloseNow()
	testutil.Equal(t, resp.Header.Get("Sec-WebSocket-Protocol"), "bearer")
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4001)
	testutil.Equal(t, reason, "Unauthorized")
}

// TestProtocolErrorDropsTCPPromptly: after answering a protocol
// violation with 1002 (text that is not UTF-8 with 1007, a message over
// the read limit with 1009) the server
// does not wait for the peer's close frame (RFC 6455 §7.1.7: it fails the
// connection), so a client that never answers sees EOF at once, not
// after seconds of a dead socket.
func TestProtocolErrorDropsTCPPromptly(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name  string
		bytes []byte
		want  websocket.StatusCode
	}{
		{name: "reserved bits", bytes: frame(true, 0b100, 1, []byte("x"), false), want: websocket.StatusProtocolError},
		{name: "bad opcode", bytes: frame(true, 0, 3, []byte("x"), false), want: websocket.StatusProtocolError},
		{name: "bad close code", bytes: frame(true, 0, 8, []byte{0x03, 0xed}, false), want: websocket.StatusProtocolError},
		{name: "unmasked", bytes: frame(true, 0, 1, []byte("x"), true), want: websocket.StatusProtocolError},
		// RFC 6455 §8.1: text that is not UTF-8 fails the connection too.
		{name: "invalid UTF-8", bytes: frame(true, 0, 1, []byte{'o', 0xff}, false), want: websocket.StatusInvalidFramePayloadData},
		// Over the 64 KiB read limit in a frame that never ends: the
		// server's answer is 1009, and the frame's end will never come.
		{name: "message too big", bytes: frame(true, 0, 2, make([]byte, 1<<20), false)[:14+70<<10], want: websocket.StatusMessageTooBig},
	}
	handlers := []struct {
		name string
		fn   wsroute.HandlerFunc
	}{
		{name: "receiving", fn: echo},
		{name: "sending only", fn: func(ctx context.Context, c *wsroute.Conn) error {
			testutil.NoErr(t, c.Accept(ctx))
			c.CloseRead()
			<-c.Done()
			return nil
		}},
	}
	// A long CloseTimeout is the user's bound for a close handshake the
	// server starts; it must not keep a failed connection around.
	opts := &wsroute.Options{CloseTimeout: 10 * time.Second}
	for _, tc := range testCases {
		for _, h := range handlers {
			t.Run(tc.name+"/"+h.name, func(t *testing.T) {
				t.Parallel()
				srv := serve(t, opts, "/ws", h.fn)
				nc := rawDial(t, srv, "/ws", nil)
				defer nc.Close()
				_, err := nc.Write(tc.bytes)
				testutil.NoErr(t, err)
				// Generous: coder/websocket alone would wait 5 s for
				// the peer's close frame.
				nc.SetReadDeadline(time.Now().Add(3 * time.Second))
				br := bufio.NewReader(nc)
				op, payload, err := readFrame(br)
				testutil.NoErr(t, err)
				testutil.Equal(t, op, byte(8))
				testutil.Check(t, len(payload) >= 2, "close frame without a code")
				testutil.Equal(t, binary.BigEndian.Uint16(payload), uint16(tc.want))
				// A reset is a close too: after 1009 the server leaves the
				// rest of the frame unread, and closing a socket with
				// unread data resets the connection.
				_, err = br.ReadByte()
				testutil.Check(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET),
					"after the %d close frame the socket stayed open: %v", tc.want, err)
			})
		}
	}
}

// TestPeerCloseReasonNotUTF8FailsWith1007: RFC 6455 §8.1 says a close
// frame whose reason is not valid UTF-8 fails the connection with 1007;
// it must not be echoed back as if it were a normal close. That holds
// with permessage-deflate too, for a close frame that arrives in pieces
// or right behind a message in the same segment, and for a handler that
// only sends; the socket is closed right after the 1007.
func TestPeerCloseReasonNotUTF8FailsWith1007(t *testing.T) {
	t.Parallel()
	closeFrame := frame(true, 0, 8, []byte{0x03, 0xe8, 'o', 'k', 0xff, 0xfe}, false) // 1000, "ok\xff\xfe"
	writes := []struct {
		name    string
		chunks  [][]byte
		message bool // a data message, which a sending-only handler refuses
	}{
		{name: "whole", chunks: [][]byte{closeFrame}},
		{name: "behind a message", message: true, chunks: [][]byte{append(frame(true, 0, 1, []byte("hi"), false), closeFrame...)}},
		{name: "behind a ping", chunks: [][]byte{append(frame(true, 0, 9, []byte("ping"), false), closeFrame...)}},
		{name: "in pieces", chunks: [][]byte{closeFrame[:1], closeFrame[1:3], closeFrame[3:7], closeFrame[7:]}},
	}
	modes := []struct {
		name string
		mode wsroute.CompressionMode
		ext  string
	}{
		{name: "plain", mode: wsroute.CompressionDisabled},
		{name: "deflate", mode: wsroute.CompressionContextTakeover, ext: "permessage-deflate"},
	}
	for _, m := range modes {
		for _, w := range writes {
			for _, sendOnly := range []bool{false, true} {
				if sendOnly && w.message {
					continue
				}
				name := m.name + "/" + w.name
				if sendOnly {
					name += "/sending only"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					errs := make(chan error, 1)
					opts := &wsroute.Options{Compression: m.mode, CloseTimeout: 10 * time.Second}
					srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
						testutil.NoErr(t, c.Accept(ctx))
						if sendOnly {
							c.CloseRead()
							<-c.Done()
							errs <- nil
							return nil
						}
						for {
							msg, err := c.ReceiveText(ctx)
							if err != nil {
								errs <- err
								return err
							}
							if msg != "hi" {
								t.Errorf("received %q", msg)
							}
						}
					})
					h := http.Header{}
					if m.ext != "" {
						h.Set("Sec-WebSocket-Extensions", m.ext)
					}
					nc := rawDial(t, srv, "/ws", h)
					defer nc.Close()
					for _, c := range w.chunks {
						_, err := nc.Write(c)
						testutil.NoErr(t, err)
					}
					// Generous: the server's CloseTimeout is 10 s.
					nc.SetReadDeadline(time.Now().Add(5 * time.Second))
					br := bufio.NewReader(nc)
					op, got, err := readFrame(br)
					if err == nil && op == 0xa {
						op, got, err = readFrame(br) // the pong
					}
					testutil.NoErr(t, err)
					testutil.Equal(t, op, byte(8))
					testutil.Check(t, len(got) >= 2, "close frame without a code")
					testutil.Equal(t, binary.BigEndian.Uint16(got), uint16(websocket.StatusInvalidFramePayloadData))
					testutil.Check(t, utf8.Valid(got[2:]), "the server's reason is not UTF-8 either: %q", got[2:])
					_, err = br.ReadByte()
					testutil.Check(t, errors.Is(err, io.EOF), "after the 1007 close frame the socket stayed open: %v", err)
					if err := <-errs; !sendOnly {
						testutil.Check(t, errors.Is(err, wsroute.ErrInvalidUTF8), "Receive error %v does not wrap ErrInvalidUTF8", err)
					}
				})
			}
		}
	}
}
