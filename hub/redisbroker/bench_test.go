package redisbroker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/benchutil"
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
	benchutil.CrossNodeBroadcast(b, benchutil.Node{URL: na.URL, Hub: na.hub}, benchutil.Node{URL: nb.URL, Hub: nb.hub}, benchutil.CrossNodeOptions{
		PerNode: perNode,
		Ready:   func() { subscribed(b, ca, prefix, "bench", 2) },
	})
}

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
	hop := benchutil.NewHop()
	sub := redisbroker.New(cb, opts)
	testutil.NoErr(b, sub.Open("B", hop.Deliver))
	b.Cleanup(func() { sub.Close() })
	sub.Subscribe("hop")
	subscribed(b, ca, prefix, "hop", 1)

	hop.Run(b, pub)
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
