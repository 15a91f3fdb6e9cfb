package wsroute_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
)

// TestControlFramesFitTheSmallWriter pins assumptions 3 and 13 on the
// write side: in direct mode coder/websocket writes through a writer of
// 128 bytes, and the longest control frames (a pong to a 125-byte ping,
// the echo of a close frame with a 123-byte reason) still reach the
// socket whole. A writer too small for one would split it across two
// writes, which netConn refuses, ending the connection.
func TestControlFramesFitTheSmallWriter(t *testing.T) {
	t.Parallel()
	logger, logs := testLogger(t)
	srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", echo)
	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	next := func() wireFrame {
		t.Helper()
		for {
			f, err := readWireFrame(br)
			testutil.NoErr(t, err)
			if f.opcode != 0x9 { // the keepalive's pings are not the point
				return f
			}
		}
	}
	for n := 0; n <= 125; n++ {
		payload := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		_, err := nc.Write(frame(true, 0, 0x9, payload, false))
		testutil.NoErr(t, err)
		f := next()
		testutil.Equal(t, f.opcode, byte(0xA))
		testutil.Check(t, bytes.Equal(f.payload, payload), "pong to a ping of %d bytes carries %q", n, f.payload)
	}
	reason := strings.Repeat("r", 123)
	closePayload := append(binary.BigEndian.AppendUint16(nil, 1000), reason...)
	_, err := nc.Write(frame(true, 0, 0x8, closePayload, false))
	testutil.NoErr(t, err)
	f := next()
	testutil.Equal(t, f.opcode, byte(0x8))
	testutil.Check(t, bytes.Equal(f.payload, closePayload), "the close frame came back as % x", f.payload)
	testutil.Check(t, !strings.Contains(logs.String(), "not one whole control frame"), "a control frame was split:\n%s", logs)
}

// TestPooledReadBufferReadsEveryFraming pins assumptions 13 and 15 on
// the read side: through the 16-byte bufio.Reader and the pooled read
// buffer under it, messages come out whole whatever their framing and
// however the bytes arrive (a 1 MiB frame in odd pieces, a fragmented
// message with pings between its fragments, hundreds of messages in one
// write, every header length), on a connection held by its handler and
// on a detached one (whose reader waits between messages in
// sockReader.wait, with the next messages possibly pending already);
// and once the last message is received the connection holds no read
// buffer.
func TestPooledReadBufferReadsEveryFraming(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			testPooledReadBuffer(t, mode)
		})
	}
}

func testPooledReadBuffer(t *testing.T, mode serveMode) {
	held := make(chan bool, 1)
	fn := func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		if _, _, pooled := wsroute.HijackBuffers(c); !pooled {
			return fmt.Errorf("a TCP connection is not read through a pooled buffer")
		}
		if string(m.Data) == "done" {
			held <- wsroute.ReadBufferHeld(c)
		}
		return c.Send(ctx, m.Type, m.Data)
	}
	srv := serve(t, &wsroute.Options{ReadLimit: 4 << 20}, "/ws", mode.handle(fn, nil))
	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))

	type msg struct {
		op   byte
		data []byte
	}
	var want []msg
	var stream [][]byte // each element is one Write
	pings := 0

	// A 1 MiB frame, written in pieces of awkward sizes.
	big := patterned(1, 1, 1<<20+3)
	want = append(want, msg{0x2, big})
	f := frame(true, 0, 0x2, big, false)
	for i := 0; len(f) > 0; i++ {
		n := min(len(f), []int{1, 2, 5, 15, 16, 17, 4095, 4096, 4097, 65536}[i%10])
		stream = append(stream, f[:n])
		f = f[n:]
	}
	// A message in 200 fragments (some empty), pings between them, in
	// one write.
	var frag, whole []byte
	for i := range 200 {
		part := patterned(2, i, (i*733)%5000)
		whole = append(whole, part...)
		op := byte(0x0)
		if i == 0 {
			op = 0x2
		}
		frag = append(frag, frame(i == 199, 0, op, part, false)...)
		if i%7 == 3 {
			frag = append(frag, frame(true, 0, 0x9, []byte(fmt.Sprint(i)), false)...)
			pings++
		}
	}
	stream = append(stream, frag)
	want = append(want, msg{0x2, whole})
	// 300 small messages in one write.
	var many []byte
	for i := range 300 {
		p := patterned(3, i, 8+i%130)
		many = append(many, frame(true, 0, 0x1, p, false)...)
		want = append(want, msg{0x1, p})
	}
	stream = append(stream, many)
	// Every header length, the header a byte at a time.
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := patterned(4, n, n)
		f := frame(true, 0, 0x2, p, false)
		hl := 2 + 4
		switch {
		case n > 65535:
			hl += 8
		case n > 125:
			hl += 2
		}
		for i := range hl {
			stream = append(stream, f[i:i+1])
		}
		stream = append(stream, f[hl:])
		want = append(want, msg{0x2, p})
	}
	stream = append(stream, frame(true, 0, 0x1, []byte("done"), false))
	want = append(want, msg{0x1, []byte("done")})

	// The echoes are read while the stream is written: the server
	// sends each message back as it comes.
	got := make(chan msg, len(want))
	readErr := make(chan error, 1)
	mr := &messageReader{br: bufio.NewReader(nc)}
	go func() {
		for range want {
			op, data, err := mr.next()
			if err != nil {
				readErr <- err
				return
			}
			got <- msg{op, data}
		}
		readErr <- nil
	}()
	for _, w := range stream {
		_, err := nc.Write(w)
		testutil.NoErr(t, err)
	}
	testutil.NoErr(t, <-readErr)
	for i, w := range want {
		g := <-got
		testutil.Check(t, g.op == w.op && bytes.Equal(g.data, w.data),
			"message %d: got opcode %d, %d bytes; want opcode %d, %d bytes", i, g.op, len(g.data), w.op, len(w.data))
	}
	testutil.Check(t, mr.pongs >= 1 && mr.pongs <= pings, "%d pongs to %d pings", mr.pongs, pings)
	testutil.Check(t, !<-held, "the connection holds a read buffer with nothing left to read")
}
