package wsroute

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
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
