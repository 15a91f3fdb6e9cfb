package wsroute_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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
	br := bufio.NewReaderSize(&slowReader{r: nc, rate: rate}, 16<<10)
	var cur []byte
	var curOp byte
	pings := 0
	for {
		fin, op, payload, err := readFrameFin(br)
		if err != nil {
			close(msgs)
			return
		}
		switch op {
		case 0x9:
			pings++
			if _, err := nc.Write(frame(true, 0, 0xA, payload, false)); err != nil {
				close(msgs)
				return
			}
			continue
		case 0xA:
			continue
		case 0x8:
			close(msgs)
			return
		case 0x1, 0x2:
			curOp, cur = op, payload
		case 0x0:
			cur = append(cur, payload...)
		}
		if fin {
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
	}{
		{"long write", 16 << 20, 8 << 20},
		{"ping behind the kernel's buffers", 6 << 20, 3 << 20},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testHealthyLargeSend(t, tc.size, tc.rate)
		})
	}
}

func testHealthyLargeSend(t *testing.T, size, rate int) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
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
	opts := &wsroute.Options{PingInterval: 200 * time.Millisecond, PongTimeout: time.Second, WriteTimeout: 3 * time.Second}
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
	nc := rawDial(t, srv, "/ws", nil)
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

// readFrameFin reads one server frame, with its FIN bit.
func readFrameFin(br *bufio.Reader) (fin bool, opcode byte, payload []byte, err error) {
	b, err := br.Peek(1)
	if err != nil {
		return false, 0, nil, err
	}
	fin = b[0]&0x80 != 0
	opcode, payload, err = readFrame(br)
	return fin, opcode, payload, err
}
