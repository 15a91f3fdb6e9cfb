package benchutil

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// Node is one process of the cross-node benchmark: a Hub on a broker,
// whose server (at URL, "http://host:port") accepts WebSocket members at
// /ws/{room}, sends each a text message, then joins it to the room.
type Node struct {
	URL string
	Hub *hub.Hub
}

// CrossNodeOptions tunes CrossNodeBroadcast for one broker.
type CrossNodeOptions struct {
	// PerNode is how many members each node has.
	PerNode int
	// Ready, if set, runs once every member joined, before the rounds:
	// to wait until the broker carries the room.
	Ready func()
	// Stalled, if set, says what the nodes report, for a stall's message.
	Stalled func() string
}

// CrossNodeBroadcast measures broadcasts across two nodes on one broker:
// o.PerNode WebSocket members on node a, as many on node b, in the room
// "bench"; node a broadcasts 128-byte binary messages (b.N of them) and
// every member reads them. Reported:
//
//	msgs/s        broadcasts per second, each reaching every member
//	deliveries/s  messages handed to members' sockets per second, both nodes
//	p50-µs p99-µs from Broadcast to a member of b reading it (cross-node)
//	local-p50-µs local-p99-µs  the same for members of a (no broker on the path)
//
// Sub-benchmark "window=1" sends the next broadcast once every member
// read the last: latency without queueing. "window=64" keeps up to 64
// broadcasts in flight: throughput, with the queueing latency it costs.
func CrossNodeBroadcast(b *testing.B, na, nb Node, o CrossNodeOptions) {
	f := &fanout{stalled: o.Stalled}
	setup := time.Now()
	defer func() { b.Logf("setup %v", time.Since(setup)) }()
	for i := range 2 * o.PerNode {
		n := na
		if i >= o.PerNode {
			n = nb
		}
		f.dial(b, n, i >= o.PerNode)
	}
	testutil.Eventually(b, func() bool { return na.Hub.Count("bench") == o.PerNode && nb.Hub.Count("bench") == o.PerNode },
		"members: A %d, B %d", na.Hub.Count("bench"), nb.Hub.Count("bench"))
	if o.Ready != nil {
		o.Ready()
	}

	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			f.run(b, na, window)
		})
	}
}

// fanout is the benchmark's members and what they measured.
type fanout struct {
	stalled func() string // what the nodes say, for a stall's message; may be nil
	members []*benchMember
	round   atomic.Pointer[round]
}

type benchMember struct {
	remote bool // on node B
	c      net.Conn
	done   chan struct{}
}

// round is one sub-benchmark: per message, how many members read it, and
// the latencies.
type round struct {
	n         int
	readers   []atomic.Int32
	complete  chan int // a message every member read
	mu        sync.Mutex
	remoteLat []time.Duration
	localLat  []time.Duration
}

// dial connects a member with a minimal WebSocket client (handshake, then
// unmasked server frames read straight off a bufio.Reader): on a shared
// two-core machine, a full client library per member would measure
// itself more than the nodes.
func (f *fanout) dial(b *testing.B, n Node, remote bool) {
	b.Helper()
	host := strings.TrimPrefix(n.URL, "http://")
	c, err := net.Dial("tcp", host)
	testutil.NoErr(b, err)
	fmt.Fprintf(c, "GET /ws/bench HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	testutil.NoErr(b, err)
	testutil.Equal(b, resp.StatusCode, http.StatusSwitchingProtocols)
	m := &benchMember{remote: remote, c: c, done: make(chan struct{})}
	f.members = append(f.members, m)
	go func() {
		defer close(m.done)
		var lat []time.Duration
		var hdr [8]byte
		payload := make([]byte, 0, 256)
		for {
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return
			}
			op, size := hdr[0]&0x0f, uint64(hdr[1]&0x7f)
			switch size {
			case 126:
				if _, err := io.ReadFull(br, hdr[:2]); err != nil {
					return
				}
				size = uint64(binary.BigEndian.Uint16(hdr[:2]))
			case 127:
				if _, err := io.ReadFull(br, hdr[:8]); err != nil {
					return
				}
				size = binary.BigEndian.Uint64(hdr[:8])
			}
			payload = slices.Grow(payload[:0], int(size))[:size]
			if _, err := io.ReadFull(br, payload); err != nil {
				return
			}
			now := time.Now()
			if op == 0x9 { // ping: answer, masked with a zero key
				c.Write(append([]byte{0x8a, 0x80 | byte(size), 0, 0, 0, 0}, payload...))
				continue
			}
			if len(payload) != 128 {
				continue // the ID, or a close frame
			}
			r := f.round.Load()
			seq := int(binary.LittleEndian.Uint64(payload))
			if r == nil || seq >= r.n {
				continue
			}
			lat = append(lat, now.Sub(time.Unix(0, int64(binary.LittleEndian.Uint64(payload[8:])))))
			if r.readers[seq].Add(1) == int32(len(f.members)) {
				r.complete <- seq
			}
			if seq == r.n-1 {
				r.mu.Lock()
				if remote {
					r.remoteLat = append(r.remoteLat, lat...)
				} else {
					r.localLat = append(r.localLat, lat...)
				}
				r.mu.Unlock()
				lat = lat[:0]
			}
		}
	}()
	b.Cleanup(func() {
		c.Close()
		<-m.done
	})
}

func (f *fanout) run(b *testing.B, na Node, window int) {
	r := &round{n: b.N, readers: make([]atomic.Int32, b.N), complete: make(chan int, b.N)}
	f.round.Store(r)
	ctx := context.Background()
	msg := make([]byte, 128)
	completed := 0
	// A stall is a minute in which no broadcast reached every member. It
	// is not a bound on the whole run: on a loaded machine 2,000
	// broadcasts to 1,000 members can take minutes, and a total bound
	// reported that as a stall.
	stall := time.NewTimer(stallAfter)
	defer stall.Stop()
	wait := func() {
		select {
		case <-r.complete:
			completed++
			stall.Reset(stallAfter)
		case <-stall.C:
			if f.stalled != nil {
				b.Fatalf("stalled: no broadcast reached every member for %v; %d of %d did; %s", stallAfter, completed, b.N, f.stalled())
			}
			b.Fatalf("stalled: no broadcast reached every member for %v; %d of %d did", stallAfter, completed, b.N)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for i-completed >= window {
			wait()
		}
		binary.LittleEndian.PutUint64(msg, uint64(i))
		binary.LittleEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		if err := na.Hub.Broadcast(ctx, "bench", wsroute.MessageBinary, msg); err != nil {
			b.Fatalf("Broadcast: %v", err)
		}
	}
	for completed < b.N {
		wait()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	// The last reader of the last message may still be appending its
	// latencies; wait for all of them.
	testutil.Eventually(b, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.remoteLat)+len(r.localLat) == b.N*len(f.members)
	}, "latencies missing")
	f.round.Store(nil)

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*len(f.members))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(micros(percentile(r.remoteLat, 50)), "p50-µs")
	b.ReportMetric(micros(percentile(r.remoteLat, 99)), "p99-µs")
	b.ReportMetric(micros(percentile(r.localLat, 50)), "local-p50-µs")
	b.ReportMetric(micros(percentile(r.localLat, 99)), "local-p99-µs")
	b.ReportMetric(0, "ns/op") // per-op time means little here; msgs/s says it
}

// stallAfter is how long CrossNodeBroadcast waits for the next broadcast
// to reach every member before it reports a stall.
const stallAfter = time.Minute

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Hop is the receiving side of a broker-hop benchmark: the Broker alone,
// without WebSockets. Node A publishes 128-byte messages (HopMessage) to
// the room "hop"; node B's broker, opened with Deliver as its deliver
// callback, receives them.
type Hop struct {
	got       chan time.Duration
	delivered atomic.Int64
}

// NewHop returns a Hop that has received nothing.
func NewHop() *Hop { return &Hop{got: make(chan time.Duration, 1024)} }

// Deliver is the receiving broker's deliver callback: it counts e and
// records how long ago HopMessage stamped it.
func (h *Hop) Deliver(e hub.Envelope) {
	h.delivered.Add(1)
	sent := time.Unix(0, int64(binary.LittleEndian.Uint64(e.Data)))
	select {
	case h.got <- time.Since(sent):
	default:
	}
}

// HopMessage is a 128-byte binary message to the room "hop", stamped
// with the time it was made.
func HopMessage() hub.Envelope {
	data := make([]byte, 128)
	binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano()))
	return hub.Envelope{Room: "hop", Type: wsroute.MessageBinary, Data: data}
}

// Run runs the sub-benchmarks "sequential" (Sequential with pub.Publish)
// and "parallel" (publishes from 8 b.RunParallel goroutines per
// GOMAXPROCS and waits until all are delivered; msgs/s).
func (h *Hop) Run(b *testing.B, pub hub.Broker) {
	h.Sequential(b, "sequential", pub.Publish)
	b.Run("parallel", func(b *testing.B) {
		ctx := context.Background()
		want := h.delivered.Load() + int64(b.N)
		b.SetParallelism(8)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := pub.Publish(ctx, HopMessage()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		testutil.Eventually(b, func() bool { return h.delivered.Load() >= want }, "delivered %d of %d", h.delivered.Load(), want)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

// Sequential runs the sub-benchmark name: send one HopMessage at a time
// and wait for its delivery. p50-µs, p99-µs: send to deliver, the
// cross-node hop.
func (h *Hop) Sequential(b *testing.B, name string, send func(context.Context, hub.Envelope) error) {
	b.Run(name, func(b *testing.B) {
		ctx := context.Background()
		for len(h.got) > 0 {
			<-h.got
		}
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			if err := send(ctx, HopMessage()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, <-h.got)
		}
		b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
		b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
	})
}
