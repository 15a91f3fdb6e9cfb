package wsroute_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// burstSizes are message lengths of every header length (7, 16 and 64
// bits), for the peer to send back to back in one write.
var burstSizes = []int{0, 1, 5, 125, 126, 200, 4000, 65535, 65536, 70000}

// sendBack answers each message with itself.
func sendBack(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
	return c.Send(ctx, m.Type, m.Data)
}

// TestErrIdleOnlyWithAnEmptyReadBuffer pins assumptions 16 and 17:
// whenever guardedConn answers errIdle to a detached connection's reader,
// and after every message once its reads end at frame ends,
// coder/websocket's bufio.Reader holds no byte, so the reader's wait need
// not look at it. The peer sends bursts in one write, pings and messages
// of every header length, so that the buffer often holds the start of the
// next frame when a message ends. It is not parallel: it watches every
// connection of the process.
func TestErrIdleOnlyWithAnEmptyReadBuffer(t *testing.T) {
	for _, mode := range []serveMode{modeDetached, modeEpoll} {
		t.Run(string(mode), func(t *testing.T) {
			var checks, full atomic.Int64
			defer wsroute.WatchEmptyReadBuffer(func(buffered int) {
				checks.Add(1)
				if buffered != 0 {
					full.Add(1)
				}
			})()
			srv := serve(t, &wsroute.Options{ReadLimit: 1 << 20}, "/ws", mode.handle(sendBack, nil))
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			mr := &messageReader{br: nc.(*bufConn).br}
			for round := range 20 {
				var burst []byte
				var want []int
				for i := range burstSizes {
					if (round+i)%3 == 0 {
						burst = append(burst, frame(true, 0, 0x9, []byte("p"), false)...)
					}
					n := burstSizes[(i+round)%len(burstSizes)]
					burst = append(burst, frame(true, 0, 0x2, make([]byte, n), false)...)
					want = append(want, n)
				}
				_, err := nc.Write(burst)
				testutil.NoErr(t, err)
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				for _, n := range want {
					_, got, err := mr.next()
					testutil.NoErr(t, err)
					testutil.Equal(t, len(got), n)
				}
			}
			testutil.Check(t, checks.Load() >= 200, "the buffer was looked at only %d times", checks.Load())
			testutil.Equal(t, full.Load(), int64(0))
		})
	}
}

// TestOneFrameMessagesReadToTheirLength pins assumption 19: one-frame
// messages of every header length, sent in bursts so that each read may
// hold the next frame's start, are read to the length of their header
// (readMessage) and come back whole and in order, in every mode.
func TestOneFrameMessagesReadToTheirLength(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			srv := serve(t, &wsroute.Options{ReadLimit: 1 << 20}, "/ws", mode.handle(sendBack, nil))
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			mr := &messageReader{br: nc.(*bufConn).br}
			rng := rand.New(rand.NewPCG(1, 2))
			for round := range 10 {
				var burst []byte
				var want [][]byte
				for i := range burstSizes {
					p := make([]byte, burstSizes[(i+round)%len(burstSizes)])
					for j := range p {
						p[j] = byte(rng.UintN(256))
					}
					burst = append(burst, frame(true, 0, 0x2, p, false)...)
					want = append(want, p)
				}
				_, err := nc.Write(burst)
				testutil.NoErr(t, err)
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				for _, w := range want {
					_, got, err := mr.next()
					testutil.NoErr(t, err)
					testutil.Check(t, bytes.Equal(got, w), "round %d: a message of %d bytes came back as %d different bytes", round, len(w), len(got))
				}
			}
		})
	}
}

// TestDeclaredLengthIsNotAllocatedAhead: a peer that declares a large
// message (within the read limit) and sends one byte of it costs the
// server memory for what it sent, not for what it declared: reading a
// message to its length (readMessage) must not size the buffer from the
// header alone. It is not parallel: it counts the process's allocations.
func TestDeclaredLengthIsNotAllocatedAhead(t *testing.T) {
	const declared = 64 << 20
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			srv := serve(t, &wsroute.Options{ReadLimit: 2 * declared}, "/ws", mode.handle(sendBack, nil))
			nc := rawDial(t, srv, "/ws", nil)
			defer nc.Close()
			hdr := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, declared)
			hdr = append(hdr, 0, 0, 0, 0, 'x') // masking key, one byte of payload
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := nc.Write(hdr)
			testutil.NoErr(t, err)
			testutil.Eventually(t, func() bool {
				return strings.Contains(allStacks(), "wsroute.(*Conn).readMessage")
			}, "the server is not reading the message:\n%s", allStacks())
			runtime.ReadMemStats(&after)
			grew := after.TotalAlloc - before.TotalAlloc
			testutil.Check(t, grew < declared/4, "the server allocated %d bytes for a message of which it has 1 byte", grew)
		})
	}
}
