package wsroute_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
)

// These tests pin the assumptions about coder/websocket listed in
// coder.go: each fails if coder/websocket (or wsroute) breaks one.

// wireFrame is one server frame as it crossed the wire.
type wireFrame struct {
	fin     bool
	rsv     byte
	opcode  byte
	payload []byte
}

// readWireFrame reads one server frame and checks what every server
// frame must satisfy: unmasked, control frames final and short.
func readWireFrame(br *bufio.Reader) (wireFrame, error) {
	var h [2]byte
	if _, err := ioReadFull(br, h[:]); err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, opcode: h[0] & 0x0f}
	if h[1]&0x80 != 0 {
		return f, fmt.Errorf("masked server frame (header % x)", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := ioReadFull(br, l[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := ioReadFull(br, l[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	switch {
	case f.opcode >= 0x8 && (!f.fin || n > 125 || f.opcode > 0xA):
		return f, fmt.Errorf("malformed control frame: header % x, length %d", h, n)
	case f.opcode > 0x2 && f.opcode < 0x8:
		return f, fmt.Errorf("reserved opcode %#x: the frame stream is corrupt", f.opcode)
	case n > 16<<20:
		return f, fmt.Errorf("frame of %d bytes: the frame stream is corrupt", n)
	}
	f.payload = make([]byte, n)
	_, err := ioReadFull(br, f.payload)
	return f, err
}

// messageReader reassembles data messages from frames, checking the
// fragmentation rules, and counts the control frames on the way.
type messageReader struct {
	br            *bufio.Reader
	onPing        func(payload []byte) // answers the server's pings, if set
	pongs, pings  int
	closed        bool
	closePayload  []byte
	afterClose    int // data frames that came after the close frame
	inMessage     bool
	op            byte
	data          []byte
	rsvSeen       bool
	framesInTotal int
}

// next returns the next whole data message, or the error that ended the
// stream. After a close frame it keeps reading, counting data frames.
func (m *messageReader) next() (byte, []byte, error) {
	for {
		f, err := readWireFrame(m.br)
		if err != nil {
			return 0, nil, err
		}
		m.framesInTotal++
		if f.rsv != 0 {
			m.rsvSeen = true
		}
		switch f.opcode {
		case 0x8:
			m.closed, m.closePayload = true, f.payload
			continue
		case 0x9:
			m.pings++
			if m.onPing != nil {
				m.onPing(f.payload)
			}
			continue
		case 0xA:
			m.pongs++
			continue
		}
		if m.closed {
			m.afterClose++
			continue
		}
		switch {
		case f.opcode == 0 && !m.inMessage:
			return 0, nil, fmt.Errorf("continuation frame outside a message")
		case f.opcode != 0 && m.inMessage:
			return 0, nil, fmt.Errorf("new message (opcode %d) inside an unfinished one", f.opcode)
		case f.opcode != 0:
			m.op, m.data, m.inMessage = f.opcode, nil, true
		}
		m.data = append(m.data, f.payload...)
		if f.fin {
			m.inMessage = false
			return m.op, m.data, nil
		}
	}
}

// patterned returns message i of sender g: its name, then filler that
// depends on both, so a torn or misplaced byte shows.
func patterned(g, i, size int) []byte {
	p := fmt.Appendf(nil, "%d:%d:", g, i)
	for len(p) < size {
		p = append(p, byte('a'+(g*31+i+len(p))%26))
	}
	return p
}

func checkPatterned(p []byte) (g, i int, ok bool) {
	if _, err := fmt.Sscanf(string(p), "%d:%d:", &g, &i); err != nil {
		return 0, 0, false
	}
	want := patterned(g, i, len(p))
	return g, i, string(want) == string(p)
}

// TestControlFramesStayWholeUnderPingFlood pins assumptions 2 and 3: while
// a client pings as fast as it can (and the keepalive pings too), two
// goroutines send messages of every size, some fragmented; every frame a
// raw client parses must be well formed and every message whole. A
// coder/websocket that split a control frame across Write calls fails
// it: netConn refuses the write and the connection ends early.
func TestControlFramesStayWholeUnderPingFlood(t *testing.T) {
	t.Parallel()
	const senders, perSender = 2, 60
	sizes := []int{8, 125, 126, 1000, 70000, 140000}
	opts := &wsroute.Options{PingInterval: 5 * time.Millisecond, PongTimeout: time.Minute} // the flood delays pongs: not what this tests
	srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		c.CloseRead() // reads the flood of pings; coder/websocket answers each
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perSender {
					if err := c.SendBytes(ctx, patterned(g, i, sizes[(g+i)%len(sizes)])); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
		if err := c.SendText(ctx, "end"); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	var stop atomic.Bool
	var writeMu sync.Mutex // the pinger and the reader's pongs share the socket
	write := func(p []byte) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		_, err := nc.Write(p)
		return err
	}
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		ping := frame(true, 0, 0x9, []byte("flood"), false)
		for !stop.Load() {
			if write(ping) != nil {
				return
			}
		}
	}()
	defer func() {
		stop.Store(true)
		nc.Close()
		<-pingerDone
	}()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	m := &messageReader{br: bufio.NewReader(nc), onPing: func(p []byte) { write(frame(true, 0, 0xA, p, false)) }}
	next := make([]int, senders)
	for {
		op, data, err := m.next()
		testutil.Check(t, err == nil, "after %d frames (%v of %d messages each, %d pongs): %v", m.framesInTotal, next, perSender, m.pongs, err)
		if op == 0x1 {
			testutil.Equal(t, string(data), "end")
			break
		}
		g, i, ok := checkPatterned(data)
		testutil.Check(t, ok, "a message of %d bytes arrived torn", len(data))
		testutil.Equal(t, i, next[g])
		next[g]++
	}
	testutil.Check(t, m.pongs > 0 && m.pings > 0, "the flood was not answered (%d pongs) or the keepalive never pinged (%d pings)", m.pongs, m.pings)
	testutil.Check(t, !m.rsvSeen, "an RSV bit was set without an extension")
}

// TestNoDataFrameFollowsTheCloseFrame pins assumptions 5 and 7: four
// goroutines send without pause, large messages among them, while the
// handler closes; nothing but control frames may follow the close frame
// on the wire (RFC 6455, section 5.5.1). coder/websocket keeps its own
// close state private, so this holds only because netConn keeps its own.
func TestNoDataFrameFollowsTheCloseFrame(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			t.Parallel()
			// CloseTimeout bounds the whole close, the wait for the
			// wire included: 2 s, so that a loaded machine still gets
			// the close frame out (the peer never answers it, so each
			// round lasts that long).
			opts := &wsroute.Options{CloseTimeout: 2 * time.Second, PingInterval: -1}
			srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				var wg sync.WaitGroup
				var sent atomic.Int64
				busy := make(chan struct{})
				var once sync.Once
				for g := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ; i++ {
							size := 100
							if i%4 == g {
								size = 150000 // fragmented: the close may come between its frames
							}
							if c.SendBytes(ctx, patterned(g, i, size)) != nil {
								return
							}
							if sent.Add(1) == 50 {
								once.Do(func() { close(busy) })
							}
						}
					}()
				}
				select {
				case <-busy: // the senders are going
				case <-ctx.Done():
				}
				err := c.Close(wsroute.StatusNormalClosure, "bye")
				wg.Wait()
				return err
			})
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m := &messageReader{br: bufio.NewReader(nc)}
			for {
				_, _, err := m.next()
				if err != nil {
					testutil.Check(t, m.closed, "the stream ended without a close frame: %v", err)
					testutil.Check(t, !isTimeout(err), "the server did not drop the connection after closing: %v", err)
					break
				}
			}
			testutil.Check(t, m.afterClose == 0, "%d data frames followed the close frame", m.afterClose)
			testutil.Equal(t, string(m.closePayload[2:]), "bye")
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestDirectModeFollowsDeflate pins assumptions 4 and 14: the response
// carries Sec-WebSocket-Extensions exactly when permessage-deflate was
// agreed, and only then do data frames come compressed (RSV1) from
// coder/websocket; otherwise wsroute writes them plain, and Hijack,
// which saw the header first, gave coder/websocket a small writer.
func TestDirectModeFollowsDeflate(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		server     wsroute.CompressionMode
		offer      bool
		compressed bool
	}{
		{"off, not offered", wsroute.CompressionDisabled, false, false},
		{"off, offered", wsroute.CompressionDisabled, true, false},
		{"on, not offered", wsroute.CompressionNoContextTakeover, false, false},
		{"on, offered", wsroute.CompressionNoContextTakeover, true, true},
		{"context takeover, offered", wsroute.CompressionContextTakeover, true, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			big := strings.Repeat("compress me ", 1000)
			buffers := make(chan [3]bool, 1)
			srv := serve(t, &wsroute.Options{Compression: tc.server}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				small, direct, pooled := wsroute.HijackBuffers(c)
				buffers <- [3]bool{small, direct, pooled}
				if err := c.SendText(ctx, big); err != nil {
					return err
				}
				_, _, err := c.Receive(ctx)
				return err
			})
			h := http.Header{}
			if tc.offer {
				h.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover")
			}
			nc, resp := rawDialResponse(t, srv, "/ws", h)
			defer nc.Close()
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			testutil.Check(t, (ext != "") == tc.compressed, "Sec-WebSocket-Extensions %q with compression expected %v", ext, tc.compressed)
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			f, err := readWireFrame(bufio.NewReader(nc))
			testutil.NoErr(t, err)
			testutil.Equal(t, f.rsv == 4, tc.compressed)
			if !tc.compressed {
				testutil.Equal(t, string(f.payload), big)
			}
			// Assumption 14: the writer Hijack chose from the response
			// headers matches the mode chosen after Accept; and any
			// TCP connection is read through a pooled buffer (15).
			b := <-buffers
			testutil.Check(t, b[0] == b[1], "Hijack gave coder/websocket a small writer: %v, but direct mode is %v", b[0], b[1])
			testutil.Equal(t, b[1], !tc.compressed)
			testutil.Check(t, b[2], "a TCP connection is not read through a pooled buffer")
		})
	}
}

// TestSwitchingProtocolsHeadersCannotBreakTheResponse: Hijack writes the
// 101 response itself; the handler's headers reach the client, a line
// break in a value cannot start a header of its own, and a key that is
// not a token is left out, as net/http does. The headers Accept adds are
// not kept in ResponseHeader afterwards.
func TestSwitchingProtocolsHeadersCannotBreakTheResponse(t *testing.T) {
	t.Parallel()
	after := make(chan http.Header, 1)
	srv := serve(t, &wsroute.Options{}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		c.ResponseHeader().Set("X-Before", "set before Accept")
		err := c.AcceptWith(ctx, wsroute.AcceptParams{Header: http.Header{
			"X-Node":      {"a", "b"},
			"X-Split":     {"one\r\nX-Injected: yes", "b\nc\r", "plain"},
			"Bad Key:":    {"dropped"},
			"X-Bad:Colon": {"dropped"},
		}})
		if err != nil {
			return err
		}
		after <- c.ResponseHeader().Clone()
		_, _, err = c.Receive(ctx)
		return err
	})
	nc, resp := rawDialResponse(t, srv, "/ws", nil)
	defer nc.Close()
	h := <-after
	testutil.Equal(t, h.Get("X-Before"), "set before Accept")
	testutil.Equal(t, h.Get("Sec-WebSocket-Accept"), "")
	testutil.Equal(t, h.Get("X-Node"), "")
	testutil.Equal(t, resp.Header.Get("X-Before"), "set before Accept")
	testutil.Equal(t, strings.Join(resp.Header.Values("X-Node"), ","), "a,b")
	testutil.Equal(t, strings.Join(resp.Header.Values("X-Split"), "|"), "one  X-Injected: yes|b c|plain")
	testutil.Equal(t, resp.Header.Get("X-Injected"), "")
	testutil.Equal(t, len(resp.Header.Values("Bad Key:"))+len(resp.Header.Values("X-Bad:Colon")), 0)
	testutil.Equal(t, resp.Header.Get("Upgrade"), "websocket")
	// The connection works after the response: a ping is answered.
	_, err := nc.Write(frame(true, 0, 0x9, []byte("hi"), false))
	testutil.NoErr(t, err)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readWireFrame(bufio.NewReader(nc))
	testutil.NoErr(t, err)
	testutil.Equal(t, f.opcode, byte(0xA))
	testutil.Equal(t, string(f.payload), "hi")
}
