package natsbroker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// BenchmarkCrossNodeBroadcast is redisbroker's benchmark of the same name
// on NATS: two nodes on one nats-server over loopback, 500 WebSocket
// members on node A, 500 on node B, one room; node A broadcasts 128-byte
// binary messages (b.N of them) and every member reads them. Reported:
//
//	msgs/s        broadcasts per second, each reaching all 1000 members
//	deliveries/s  messages handed to members' sockets per second, both nodes
//	p50-µs p99-µs from Broadcast to a member of B reading it (cross-node)
//	local-p50-µs  the same for members of A (no NATS on the path)
//
// "window=1" sends the next broadcast once every member read the last:
// latency without queueing. "window=64" keeps up to 64 broadcasts in
// flight: throughput, with the queueing latency it costs. Run with
// -benchtime=2000x; the clients share the machine with both nodes and
// NATS, so the numbers are a floor, not a ceiling.
func BenchmarkCrossNodeBroadcast(b *testing.B) {
	perNode := 500
	if n, err := strconv.Atoi(os.Getenv("NEXIO_BENCH_MEMBERS")); err == nil && n > 0 {
		perNode = n // a quicker run
	}
	url := natsURL(b)
	prefix := testPrefix(b, url)
	na := newHubNode(b, url, prefix, "A")
	nb := newHubNode(b, url, prefix, "B")
	f := &fanout{stalled: func() string {
		return fmt.Sprintf("A: %+v %+v; B: %+v %+v", na.hub.Stats(), na.broker.Stats(), nb.hub.Stats(), nb.broker.Stats())
	}}
	setup := time.Now()
	defer func() { b.Logf("setup %v", time.Since(setup)) }()
	for i := range 2 * perNode {
		n := na
		if i >= perNode {
			n = nb
		}
		f.dial(b, n, i >= perNode)
	}
	testutil.Eventually(b, func() bool { return na.hub.Count("bench") == perNode && nb.hub.Count("bench") == perNode },
		"members: A %d, B %d", na.hub.Count("bench"), nb.hub.Count("bench"))

	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			f.run(b, na, window)
		})
	}
}

// hubNode is one process: a Hub on a natsbroker, serving /ws/{room}.
type hubNode struct {
	*httptest.Server
	hub    *hub.Hub
	broker *natsbroker.Broker
}

func newHubNode(t testing.TB, url, prefix, name string) *hubNode {
	t.Helper()
	logger, _ := testLogger(t)
	br := natsbroker.New(connect(t, url), &natsbroker.Options{Prefix: prefix, Timeout: 5 * time.Second, Logger: logger})
	n := &hubNode{hub: hub.New(&hub.Options{Broker: br, Node: name, Logger: logger}), broker: br}
	tracker := wsroute.NewTracker()
	mux := http.NewServeMux()
	mux.Handle("/ws/{room}", (&wsroute.Options{Tracker: tracker, Logger: logger}).Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := c.SendText(ctx, "id:"+c.ID()); err != nil {
			return err
		}
		if err := n.hub.Join(c, c.Param("room")); err != nil {
			return err
		}
		for _, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
		}
		return nil
	}))
	n.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.hub.Shutdown(ctx)
		tracker.Shutdown(ctx)
		n.Server.Close()
	})
	return n
}

// fanout is the benchmark's members and what they measured.
type fanout struct {
	stalled func() string // what the nodes say, for a stall's message
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
func (f *fanout) dial(b *testing.B, n *hubNode, remote bool) {
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

func (f *fanout) run(b *testing.B, na *hubNode, window int) {
	r := &round{n: b.N, readers: make([]atomic.Int32, b.N), complete: make(chan int, b.N)}
	f.round.Store(r)
	ctx := context.Background()
	msg := make([]byte, 128)
	completed := 0
	timeout := time.After(2 * time.Minute)
	wait := func() {
		select {
		case <-r.complete:
			completed++
		case <-timeout:
			b.Fatalf("stalled: %d of %d broadcasts reached every member; %s", completed, b.N, f.stalled())
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
		if err := na.hub.Broadcast(ctx, "bench", wsroute.MessageBinary, msg); err != nil {
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

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkBrokerHop measures the Broker alone, without WebSockets: node
// A publishes 128-byte messages to a room, node B's deliver callback
// receives them. "sequential" publishes one at a time and waits for its
// delivery (p50-µs, p99-µs: Publish to deliver, the cross-node hop);
// "parallel" publishes from b.RunParallel goroutines, which share each
// confirming PING (msgs/s). "append" is sequential through Append, the
// path of a room with history: a JetStream write, then the live message.
func BenchmarkBrokerHop(b *testing.B) {
	url := natsURL(b)
	opts := &natsbroker.Options{Prefix: testPrefix(b, url)}
	pub, _, err := openBroker(b, connect(b, url), "A", opts)
	testutil.NoErr(b, err)
	got := make(chan time.Duration, 1024)
	var delivered atomic.Int64
	sub := natsbroker.New(connect(b, url), opts)
	testutil.NoErr(b, sub.Open("B", func(e hub.Envelope) {
		if e.Presence != nil {
			return
		}
		delivered.Add(1)
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(e.Data)))
		select {
		case got <- time.Since(sent):
		default:
		}
	}))
	b.Cleanup(func() { sub.Close() })
	sub.Subscribe("hop")
	ctx := context.Background()
	msg := func() hub.Envelope {
		data := make([]byte, 128)
		binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano()))
		return hub.Envelope{Room: "hop", Type: wsroute.MessageBinary, Data: data}
	}

	b.Run("sequential", func(b *testing.B) {
		for len(got) > 0 {
			<-got
		}
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			if err := pub.Publish(ctx, msg()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, <-got)
		}
		b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
		b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
	})
	b.Run("parallel", func(b *testing.B) {
		want := delivered.Load() + int64(b.N)
		b.SetParallelism(8)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := pub.Publish(ctx, msg()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		testutil.Eventually(b, func() bool { return delivered.Load() >= want }, "delivered %d of %d", delivered.Load(), want)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("append", func(b *testing.B) {
		for len(got) > 0 {
			<-got
		}
		hc := hub.History{Size: 1000, TTL: time.Hour}
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			if _, err := pub.Append(ctx, msg(), hc); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, <-got)
		}
		b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
		b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
	})
}
