package redisbroker_test

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

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// BenchmarkCrossNodeBroadcast measures broadcasts across two nodes on one
// Redis over loopback: 500 WebSocket members on node A, 500 on node B,
// one room; node A broadcasts 128-byte binary messages (b.N of them) and
// every member reads them. Reported:
//
//	msgs/s        broadcasts per second, each reaching all 1000 members
//	deliveries/s  messages handed to members' sockets per second, both nodes
//	p50-µs p99-µs from Broadcast to a member of B reading it (cross-node)
//	local-p50-µs  the same for members of A (no Redis on the path)
//
// "window=1" sends the next broadcast once every member read the last:
// latency without queueing. "window=64" keeps up to 64 broadcasts in
// flight: throughput, with the queueing latency it costs. Run with
// -benchtime=2000x; the clients share the machine with both nodes and
// Redis, so the numbers are a floor, not a ceiling.
func BenchmarkCrossNodeBroadcast(b *testing.B) {
	const perNode = 500
	ca, cb := newClient(b), newClient(b)
	prefix := testPrefix(b, ca)
	na := newNode(b, ca, prefix, "A", nil)
	nb := newNode(b, cb, prefix, "B", nil)
	f := &fanout{}
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
	subscribed(b, ca, prefix, "bench", 2)

	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			f.run(b, na, window)
		})
	}
}

// fanout is the benchmark's members and what they measured.
type fanout struct {
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
func (f *fanout) dial(b *testing.B, n *node, remote bool) {
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

func (f *fanout) run(b *testing.B, na *node, window int) {
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
			b.Fatalf("stalled: %d of %d broadcasts reached every member", completed, b.N)
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
// "parallel" publishes from b.RunParallel goroutines, which the
// publisher batches into pipelines (msgs/s).
func BenchmarkBrokerHop(b *testing.B) {
	ca, cb := newClient(b), newClient(b)
	prefix := testPrefix(b, ca)
	opts := &redisbroker.Options{Prefix: prefix}
	pub, _, err := openBroker(b, ca, "A", opts)
	testutil.NoErr(b, err)
	got := make(chan time.Duration, 1024)
	var delivered atomic.Int64
	sub := redisbroker.New(cb, opts)
	testutil.NoErr(b, sub.Open("B", func(e hub.Envelope) {
		delivered.Add(1)
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(e.Data)))
		select {
		case got <- time.Since(sent):
		default:
		}
	}))
	b.Cleanup(func() { sub.Close() })
	sub.Subscribe("hop")
	subscribed(b, ca, prefix, "hop", 1)
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
}

// BenchmarkHistoryBroadcast compares broadcasts to one room with
// history (Append: a Lua script that stores, trims and publishes) and
// without (Publish), through the Broker alone on one Redis: node A sends
// 128-byte messages from 8 goroutines (the publisher pipelines them),
// node B delivers them. msgs/s counts messages delivered by B per
// second. With history, A delivers its own messages too, as they come
// back from Redis.
func BenchmarkHistoryBroadcast(b *testing.B) {
	ca, cb := newClient(b), newClient(b)
	prefix := testPrefix(b, ca)
	opts := &redisbroker.Options{Prefix: prefix}
	pub, _, err := openBroker(b, ca, "A", opts)
	testutil.NoErr(b, err)
	var delivered atomic.Int64
	sub := redisbroker.New(cb, opts)
	testutil.NoErr(b, sub.Open("B", func(hub.Envelope) { delivered.Add(1) }))
	b.Cleanup(func() { sub.Close() })
	sub.Subscribe("room")
	subscribed(b, ca, prefix, "room", 1)
	ctx := context.Background()
	h := hub.History{Size: 1000, TTL: 10 * time.Minute}
	for _, tc := range []struct {
		withHistory bool
		senders     int // goroutines per GOMAXPROCS
	}{{false, 8}, {true, 8}, {false, 64}, {true, 64}} {
		name := "publish"
		if tc.withHistory {
			name = "append"
		}
		withHistory := tc.withHistory
		b.Run(fmt.Sprintf("%s/senders=%dxP", name, tc.senders), func(b *testing.B) {
			want := delivered.Load() + int64(b.N)
			data := make([]byte, 128)
			b.SetParallelism(tc.senders)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := hub.Envelope{Room: "room", Type: wsroute.MessageBinary, Data: data}
					var err error
					if withHistory {
						_, err = pub.Append(ctx, e, h)
					} else {
						err = pub.Publish(ctx, e)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			testutil.Eventually(b, func() bool { return delivered.Load() >= want }, "delivered %d of %d", delivered.Load(), want)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
