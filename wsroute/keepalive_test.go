package wsroute_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
)

// slowReader reads at most rate bytes a second, in chunks: a client on
// a slow link that reads steadily.
type slowReader struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	// Wait until the bytes read so far are due at rate (a simulated
	// link, not synchronisation).
	if d := time.Until(s.start.Add(time.Duration(float64(s.n) / float64(s.rate) * float64(time.Second)))); d > 0 {
		time.Sleep(d)
	}
	n, err := s.r.Read(p)
	s.n += n
	return n, err
}

// rawPeer reads server frames from nc at rate, answers every ping with a
// pong, and reassembles data messages (fragmented or not). It sends each
// message, with the number of pings seen before it ended, on msgs.
type peerMessage struct {
	opcode byte
	data   []byte
	pings  int
}

func rawPeer(t *testing.T, nc net.Conn, rate int, msgs chan<- peerMessage) {
	t.Helper()
	defer close(msgs)
	br := bufio.NewReaderSize(&slowReader{r: nc, rate: rate}, 16<<10)
	var cur []byte
	var curOp byte
	compressed := false
	pings := 0
	for {
		f, err := readWireFrame(br)
		if err != nil {
			return
		}
		switch f.opcode {
		case 0x9:
			pings++
			if _, err := nc.Write(frame(true, 0, 0xA, f.payload, false)); err != nil {
				return
			}
			continue
		case 0xA:
			continue
		case 0x8:
			return
		case 0x1, 0x2:
			curOp, cur, compressed = f.opcode, f.payload, f.rsv&4 != 0
		case 0x0:
			cur = append(cur, f.payload...)
		}
		if f.fin {
			if compressed {
				// permessage-deflate (RFC 7692, section 7.2.2).
				r := flate.NewReader(io.MultiReader(bytes.NewReader(cur), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
				cur, err = io.ReadAll(r)
				if err != nil && err != io.ErrUnexpectedEOF {
					return
				}
			}
			msgs <- peerMessage{opcode: curOp, data: cur, pings: pings}
			cur = nil
		}
	}
}

// TestPingsDoNotKillAHealthyLargeSend is the repro of a ping waiting
// behind a long write: the control frame's timer closed the socket
// mid-send. A send to a peer that reads slowly but steadily, and answers
// every ping, must succeed however long it takes, and the connection must
// stay open after it. Both cases take about 2 s. In the first the send
// holds the socket for longer than PongTimeout; in the second the ping
// waits behind megabytes already in the kernel's buffers, which the peer
// takes longer than PongTimeout to read.
func TestPingsDoNotKillAHealthyLargeSend(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		size, rate int // bytes, bytes a second
		deflate    bool
		// pongTimeout is shorter than the send. The long writes
		// take twice theirs, which leaves a loaded machine room to
		// stall the peer's reads a while (a stall longer than
		// PongTimeout the server may rightly judge); behind the
		// kernel's buffers, the peer needs more than PongTimeout to
		// reach the ping, which only the progress it makes excuses.
		pongTimeout time.Duration
	}{
		{"long write", 16 << 20, 4 << 20, false, 2 * time.Second},
		{"ping behind the kernel's buffers", 6 << 20, 3 << 20, false, time.Second},
		// coder/websocket writes the frames: the same must hold.
		{"long write, compressed", 16 << 20, 4 << 20, true, 2 * time.Second},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.deflate && raceEnabled {
				// Compressing 16 MiB under -race takes longer than the
				// test's PongTimeout many times over: what it would
				// measure is the race detector.
				t.Skip("compression is too slow under -race for this timing")
			}
			testHealthyLargeSend(t, tc.size, tc.rate, tc.deflate, tc.pongTimeout)
		})
	}
}

func testHealthyLargeSend(t *testing.T, size, rate int, deflate bool, pongTimeout time.Duration) {
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data) // incompressible: compressed, it is as long on the wire
	var sendErr error
	sent := make(chan struct{})
	sendState := func() string {
		select {
		case <-sent:
			return fmt.Sprint("send returned ", sendErr)
		default:
			return "still sending"
		}
	}
	opts := &wsroute.Options{PingInterval: 200 * time.Millisecond, PongTimeout: pongTimeout, WriteTimeout: 3 * time.Second}
	var h http.Header
	if deflate {
		opts.Compression = wsroute.CompressionNoContextTakeover
		h = http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}}
	}
	srv := serve(t, opts, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		c.CloseRead() // pongs are read while the send goes on
		err := c.SendBytes(ctx, data)
		if err == nil {
			err = c.SendText(ctx, "after")
		}
		sendErr = err
		close(sent)
		if err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
	nc := rawDial(t, srv, "/ws", h)
	defer nc.Close()
	msgs := make(chan peerMessage, 2)
	go rawPeer(t, nc, rate, msgs)
	start := time.Now()
	m, ok := <-msgs
	testutil.Check(t, ok, "the connection ended before the message arrived (after %v); %s", time.Since(start), sendState())
	testutil.Equal(t, m.opcode, byte(0x2))
	testutil.Equal(t, len(m.data), size)
	testutil.Check(t, bytes.Equal(m.data, data), "the message arrived corrupted")
	testutil.Check(t, m.pings > 0, "no ping reached the peer during the %v send: pings did not get between its frames", time.Since(start))
	m, ok = <-msgs
	testutil.Check(t, ok, "the connection ended after the large send; %s", sendState())
	testutil.Equal(t, string(m.data), "after")
	<-sent
	testutil.NoErr(t, sendErr)
	nc.Write(frame(true, 0, 0x8, []byte{3, 232}, false))
	for range msgs {
	}
}
