package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// clusterHub is a Hub with history on a node of c.
func clusterHub(c *memCluster, opts hub.Options) *hub.Hub {
	opts.Broker = c.broker()
	if opts.History.Size == 0 {
		opts.History = hub.History{Size: 10000}
	}
	opts.Stamp = stampPos
	return hub.New(&opts)
}

// TestStoredSeam is TestJoinFromSeam across two nodes of a broker that
// keeps the history: publishers on both nodes, members rejoining on
// either one. Each member's sequence must be exactly 1..N: the store
// orders the room, every node delivers in that order, and JoinFrom joins
// the replay read from the store to the live deliveries without a gap
// or a duplicate.
func TestStoredSeam(t *testing.T) {
	t.Parallel()
	const n = 240
	c := newMemCluster()
	a := newHistoryServer(t, clusterHub(c, hub.Options{Node: "a"}), nil)
	b := newHistoryServer(t, clusterHub(c, hub.Options{Node: "b"}), nil)
	runSeam(t, []*historyServer{a, b}, []*hub.Hub{a.hub, b.hub, a.hub, b.hub}, n, 4)
}

// TestStoredGapFilled: the broker loses every 7th delivery to node b (as
// a pub/sub message lost while a subscription reconnects): b's members
// still get every message, in order, read from the store.
func TestStoredGapFilled(t *testing.T) {
	t.Parallel()
	c := newMemCluster()
	c.lose = func(node string, e hub.Envelope) bool { return node == "b" && e.Position.Offset%7 == 0 }
	a := clusterHub(c, hub.Options{Node: "a"})
	defer a.Shutdown(context.Background())
	b := newHistoryServer(t, clusterHub(c, hub.Options{Node: "b"}), nil)
	first, err := a.Publish(context.Background(), "r", wsroute.MessageText, []byte("m1"))
	testutil.NoErr(t, err)
	member, rec := b.dial(t, "r", hub.Position{Epoch: first.Epoch})
	testutil.Equal(t, rec.Recovered, true)
	publishN(t, a, "r", 2, 50)
	for i := 1; i <= 50; i++ {
		p, data := parseStamped(t, read(t, member))
		testutil.Equal(t, p, hub.Position{Epoch: first.Epoch, Offset: uint64(i)})
		testutil.Equal(t, data, fmt.Sprint("m", i))
	}
}

// TestStoredNewEpoch: the store loses a room's history (a Redis restarted
// without persistence). Members go on with the new epoch; a member
// coming back from the old one is not recovered and gets nothing
// replayed; one from the new epoch is.
func TestStoredNewEpoch(t *testing.T) {
	t.Parallel()
	c := newMemCluster()
	a := clusterHub(c, hub.Options{Node: "a"})
	defer a.Shutdown(context.Background())
	b := newHistoryServer(t, clusterHub(c, hub.Options{Node: "b"}), nil)
	first, err := a.Publish(context.Background(), "r", wsroute.MessageText, []byte("m1"))
	testutil.NoErr(t, err)
	member, _ := b.dial(t, "r", hub.Position{Epoch: first.Epoch})
	old := publishN(t, a, "r", 2, 5)
	for range 5 {
		read(t, member)
	}
	c.forget("r")
	fresh := publishN(t, a, "r", 6, 7)
	testutil.Check(t, fresh.Epoch != old.Epoch, "no new epoch")
	for i := 6; i <= 7; i++ {
		p, data := parseStamped(t, read(t, member))
		testutil.Equal(t, p.Epoch, fresh.Epoch)
		testutil.Equal(t, data, fmt.Sprint("m", i))
	}
	back, rec := b.dial(t, "r", old)
	testutil.Equal(t, rec.Recovered, false)
	testutil.Equal(t, rec.Missed, 0)
	next := publishN(t, a, "r", 8, 8)
	p, _ := parseStamped(t, read(t, back)) // live, nothing replayed before it
	testutil.Equal(t, p, next)

	_, rec = b.dial(t, "r", hub.Position{Epoch: fresh.Epoch, Offset: 1})
	testutil.Equal(t, rec, hub.Recovery{Recovered: true, Missed: 2, Position: next})
}

// TestPresenceEvents: OnPresence reports this node's members (once
// accepted) and, through the broker, the other node's, joins before
// leaves.
func TestPresenceEvents(t *testing.T) {
	t.Parallel()
	c := newMemCluster()
	type ev struct {
		room string
		e    hub.PresenceEvent
	}
	var mu sync.Mutex
	got := map[string][]ev{}
	record := func(node string) func(string, hub.PresenceEvent) {
		return func(room string, e hub.PresenceEvent) {
			mu.Lock()
			got[node] = append(got[node], ev{room, e})
			mu.Unlock()
		}
	}
	describe := func(c *wsroute.Conn) map[string]string { return map[string]string{"name": "ann"} }
	a := newHistoryServer(t, clusterHub(c, hub.Options{Node: "a", OnPresence: record("a"), Describe: describe}), nil)
	b := newHistoryServer(t, clusterHub(c, hub.Options{Node: "b", OnPresence: record("b")}), nil)
	bob, _ := b.dial(t, "r", hub.Position{}) // b subscribes to r
	alice, _ := a.dial(t, "r", hub.Position{})
	alice.CloseNow()
	count := func(node string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[node])
	}
	testutil.Eventually(t, func() bool { return count("a") == 2 && count("b") == 3 }, "events: %v", got)
	mu.Lock()
	defer mu.Unlock()
	// a: its own member's join and leave, with its description.
	testutil.Equal(t, got["a"][0].e.Joined, true)
	testutil.Equal(t, got["a"][0].e.Member.Meta["name"], "ann")
	testutil.Equal(t, got["a"][0].e.Member.Node, "a")
	testutil.Equal(t, got["a"][1].e.Joined, false)
	// b: its own join, then a's member joining and leaving.
	testutil.Equal(t, got["b"][0].e.Member.Node, "b")
	testutil.Equal(t, got["b"][1].e.Joined, true)
	testutil.Equal(t, got["b"][1].e.Member.Meta["name"], "ann")
	testutil.Equal(t, got["b"][1].e.Member.Node, "a")
	testutil.Equal(t, got["b"][2].e.Joined, false)
	testutil.Equal(t, got["b"][2].e.Member.ConnID, got["b"][1].e.Member.ConnID)
	testutil.Equal(t, got["b"][2].room, "r")
	_ = bob
}

// TestStoredSubscriptionWindow: a node's first member of a room joins
// from a position; the broker's subscription takes effect only later, so
// a message stored in between never reaches the node by pub/sub. The
// node continues from the position the store had when the member joined,
// sees the gap at the next delivery, and reads the message from the
// store: the member gets both, in order.
func TestStoredSubscriptionWindow(t *testing.T) {
	t.Parallel()
	c := newMemCluster()
	c.slowSubscribe = true
	a := clusterHub(c, hub.Options{Node: "a"})
	defer a.Shutdown(context.Background())
	b := newHistoryServer(t, clusterHub(c, hub.Options{Node: "b"}), nil)
	pos := publishN(t, a, "r", 1, 3)
	member, rec := b.dial(t, "r", pos)
	testutil.Equal(t, rec, hub.Recovery{Recovered: true, Position: pos})
	publishN(t, a, "r", 4, 4) // b is not subscribed yet: lost to it
	c.applySubscriptions()
	publishN(t, a, "r", 5, 5)
	for i := 4; i <= 5; i++ {
		p, data := parseStamped(t, read(t, member))
		testutil.Equal(t, p, hub.Position{Epoch: pos.Epoch, Offset: uint64(i)})
		testutil.Equal(t, data, fmt.Sprint("m", i))
	}
}
