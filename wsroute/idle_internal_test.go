package wsroute

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// TestErrIdleOnlyWithAnEmptyReadBuffer pins assumptions 16 and 17:
// whenever guardedConn answers errIdle to a detached connection's reader,
// and after every message once its reads end at frame ends,
// coder/websocket's bufio.Reader holds no byte, so the reader's wait need
// not look at it. The peer sends bursts in one write, pings and messages
// of every header length, so that the buffer often holds the start of the
// next frame when a message ends.
func TestErrIdleOnlyWithAnEmptyReadBuffer(t *testing.T) {
	var checks, full atomic.Int64
	hook := func(g *guardedConn) {
		checks.Add(1)
		if g.br.Buffered() != 0 {
			full.Add(1)
		}
	}
	emptyHook.Store(&hook)
	defer emptyHook.Store(nil)

	srv := httptest.NewServer((&Options{ReadLimit: 1 << 20}).Handle(func(ctx context.Context, c *Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.Detach(ctx, func(ctx context.Context, c *Conn, m Message) error {
			return c.Send(ctx, m.Type, m.Data)
		})
	}))
	defer srv.Close()
	nc, br := rawHandshake(t, strings.TrimPrefix(srv.URL, "http://"))
	defer nc.Close()

	sizes := []int{0, 1, 5, 125, 126, 200, 4000, 65535, 65536, 70000}
	for round := range 20 {
		var burst []byte
		var want []int
		for i, n := range sizes {
			if (round+i)%3 == 0 {
				burst = append(burst, maskedFrame(0x9, []byte("p"))...)
			}
			n = sizes[(i+round)%len(sizes)]
			burst = append(burst, maskedFrame(0x2, make([]byte, n))...)
			want = append(want, n)
		}
		_, err := nc.Write(burst)
		testutil.NoErr(t, err)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for len(want) > 0 {
			op, n, err := readMessage(br)
			testutil.NoErr(t, err)
			if op == 0xA {
				continue
			}
			testutil.Equal(t, n, want[0])
			want = want[1:]
		}
	}
	testutil.Check(t, checks.Load() >= 200, "the buffer was looked at only %d times", checks.Load())
	testutil.Equal(t, full.Load(), int64(0))
}

// TestOneFrameMessagesReadToTheirLength pins assumption 19: one-frame
// messages of every header length, sent in bursts so that each read may
// hold the next frame's start, are read to the length of their header
// (readMessage) and come back whole and in order, from a connection held
// by its handler and from a detached one.
func TestOneFrameMessagesReadToTheirLength(t *testing.T) {
	for _, detach := range []bool{false, true} {
		t.Run(fmt.Sprint("detached=", detach), func(t *testing.T) {
			echo := func(ctx context.Context, c *Conn, m Message) error {
				return c.Send(ctx, m.Type, m.Data)
			}
			srv := httptest.NewServer((&Options{ReadLimit: 1 << 20}).Handle(func(ctx context.Context, c *Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				if detach {
					return c.Detach(ctx, echo)
				}
				for m, err := range c.Messages(ctx) {
					if err != nil {
						return err
					}
					if err := echo(ctx, c, m); err != nil {
						return err
					}
				}
				return nil
			}))
			defer srv.Close()
			nc, br := rawHandshake(t, strings.TrimPrefix(srv.URL, "http://"))
			defer nc.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			sizes := []int{0, 1, 5, 125, 126, 200, 4000, 65535, 65536, 70000}
			for round := range 10 {
				var burst []byte
				var want [][]byte
				for i := range sizes {
					p := make([]byte, sizes[(i+round)%len(sizes)])
					for j := range p {
						p[j] = byte(rng.UintN(256))
					}
					burst = append(burst, maskedFrame(0x2, p)...)
					want = append(want, p)
				}
				_, err := nc.Write(burst)
				testutil.NoErr(t, err)
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				for _, w := range want {
					got, err := readPayload(br)
					testutil.NoErr(t, err)
					testutil.Check(t, bytes.Equal(got, w), "round %d: a message of %d bytes came back as %d different bytes", round, len(w), len(got))
				}
			}
		})
	}
}

// readPayload reads one server message, in fragments or not, and
// returns its payload.
func readPayload(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		var h [10]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return nil, err
		}
		l := int64(h[1] & 0x7f)
		switch l {
		case 126:
			if _, err := io.ReadFull(br, h[2:4]); err != nil {
				return nil, err
			}
			l = int64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			if _, err := io.ReadFull(br, h[2:10]); err != nil {
				return nil, err
			}
			l = int64(binary.BigEndian.Uint64(h[2:10]))
		}
		p := make([]byte, l)
		if _, err := io.ReadFull(br, p); err != nil {
			return nil, err
		}
		out = append(out, p...)
		if h[0]&0x80 != 0 {
			return out, nil
		}
	}
}

// rawHandshake opens a WebSocket connection to addr by hand and returns
// it with a reader of what follows the 101 response.
func rawHandshake(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	testutil.NoErr(t, err)
	_, err = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	testutil.NoErr(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	testutil.NoErr(t, err)
	testutil.Equal(t, resp.StatusCode, http.StatusSwitchingProtocols)
	return nc, br
}

// maskedFrame is one final client frame with a zero masking key.
func maskedFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// readMessage reads one server message, or control frame, and returns
// its opcode and length. A message may come in fragments.
func readMessage(br *bufio.Reader) (op byte, n int, err error) {
	for {
		var h [10]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return 0, 0, err
		}
		l := int64(h[1] & 0x7f)
		switch l {
		case 126:
			if _, err := io.ReadFull(br, h[2:4]); err != nil {
				return 0, 0, err
			}
			l = int64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			if _, err := io.ReadFull(br, h[2:10]); err != nil {
				return 0, 0, err
			}
			l = int64(binary.BigEndian.Uint64(h[2:10]))
		}
		if _, err := br.Discard(int(l)); err != nil {
			return 0, 0, err
		}
		if o := h[0] & 0x0f; o != 0 {
			op = o
		}
		n += int(l)
		if h[0]&0x80 != 0 {
			return op, n, nil
		}
	}
}
