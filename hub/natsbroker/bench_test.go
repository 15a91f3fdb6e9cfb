package natsbroker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/internal/benchutil"
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
	benchutil.CrossNodeBroadcast(b, benchutil.Node{URL: na.URL, Hub: na.hub}, benchutil.Node{URL: nb.URL, Hub: nb.hub}, benchutil.CrossNodeOptions{
		PerNode: perNode,
		Stalled: func() string {
			return fmt.Sprintf("A: %+v %+v; B: %+v %+v", na.hub.Stats(), na.broker.Stats(), nb.hub.Stats(), nb.broker.Stats())
		},
	})
	// Both nodes lived throughout: a heartbeat starved by the delivery
	// load would have let the other node sweep their members.
	if swept := na.broker.Stats().Expired + nb.broker.Stats().Expired; swept > 0 {
		b.Errorf("%d live members were swept as expired during the run: a heartbeat came late (A: %+v; B: %+v)", swept, na.broker.Stats(), nb.broker.Stats())
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
	hop := benchutil.NewHop()
	sub := natsbroker.New(connect(b, url), opts)
	testutil.NoErr(b, sub.Open("B", func(e hub.Envelope) {
		if e.Presence != nil {
			return
		}
		hop.Deliver(e)
	}))
	b.Cleanup(func() { sub.Close() })
	sub.Subscribe("hop")

	hop.Run(b, pub)
	hc := hub.History{Size: 1000, TTL: time.Hour}
	hop.Sequential(b, "append", func(ctx context.Context, e hub.Envelope) error {
		_, err := pub.Append(ctx, e, hc)
		return err
	})
}
