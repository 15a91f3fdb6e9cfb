package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// startCluster starts a Redis Cluster of n masters (no replicas) on free
// ports, each a private redis-server, and waits until it serves every
// slot. It returns the servers in the order of their slot ranges.
func startCluster(t testing.TB, n int) []*redisServer {
	t.Helper()
	servers := make([]*redisServer, n)
	for i := range servers {
		servers[i] = startRedis(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
	}
	ctx := testutil.Ctx(t)
	clients := make([]*redis.Client, n)
	for i, s := range servers {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.addr()})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		testutil.NoErr(t, c.ClusterAddSlotsRange(ctx, lo, hi).Err())
	}
	for _, s := range servers[1:] {
		testutil.NoErr(t, clients[0].ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(s.port)).Err())
	}
	testutil.Eventually(t, func() bool {
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				return false
			}
		}
		return true
	}, "the cluster did not form")
	return servers
}

func newClusterClient(t testing.TB, servers []*redisServer) *redis.ClusterClient {
	t.Helper()
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.addr()
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	return c
}

// Two nodes on a three-master Redis Cluster, through
// redis.NewClusterClient: sharded pub/sub is chosen by itself, and
// broadcast, SendTo and presence work as on a single Redis. The test
// then moves the application's slot to another master, as a resharding
// does: Redis drops the sharded subscriptions, and the brokers must
// follow the slot by themselves.
func TestCluster(t *testing.T) {
	t.Parallel()
	servers := startCluster(t, 3)
	testCases := []struct {
		name string
		mode redisbroker.PubSubMode
		want redisbroker.PubSubMode
	}{
		{"auto is sharded", redisbroker.AutoPubSub, redisbroker.ShardedPubSub},
		{"classic", redisbroker.ClassicPubSub, redisbroker.ClassicPubSub},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := newClusterClient(t, servers), newClusterClient(t, servers)
			prefix := "cluster-" + tc.mode.String()
			opts := &redisbroker.Options{PubSub: tc.mode, PresenceTTL: 3 * time.Second}
			a := newNode(t, ca, prefix, "A", opts)
			b := newNode(t, cb, prefix, "B", opts)
			testutil.Eventually(t, func() bool { return a.broker.PubSubMode() == tc.want && b.broker.PubSubMode() == tc.want },
				"modes %v and %v, want %v", a.broker.PubSubMode(), b.broker.PubSubMode(), tc.want)

			sender := join(t, a, "lobby", "ann")
			peerA := join(t, a, "lobby", "bob")
			peerB := join(t, b, "lobby", "cid")
			ctx := testutil.Ctx(t)
			owner := slotOwner(t, ctx, ca, "{"+prefix+"}")
			waitSubscribers(t, ctx, servers, tc.want, "{"+prefix+"}:r:lobby", 2)

			sender.send(t, websocket.MessageText, "hello cluster")
			testutil.Equal(t, string(peerA.recv(t).Data), "hello cluster")
			testutil.Equal(t, string(peerB.recv(t).Data), "hello cluster")
			sender.quiet(t, 100*time.Millisecond)

			var err error
			testutil.Eventually(t, func() bool {
				err = b.hub.SendTo(ctx, sender.id, wsroute.MessageText, []byte("direct"))
				return err == nil
			}, "SendTo across the cluster: %v", err)
			testutil.Equal(t, string(sender.recv(t).Data), "direct")

			var ms []hub.Member
			testutil.Eventually(t, func() bool {
				ms, err = b.hub.Presence(ctx, "lobby")
				return err == nil && len(ms) == 3
			}, "presence: %v %v", ms, err)

			if tc.want != redisbroker.ShardedPubSub {
				return
			}
			// Reshard: move the slot to another master.
			to := servers[0]
			if to.addr() == owner.addr() {
				to = servers[1]
			}
			moveSlot(t, ctx, "{"+prefix+"}", owner, to)
			testutil.Eventually(t, func() bool { return slotOwner(t, ctx, ca, "{"+prefix+"}").port == to.port }, "the client did not learn the move")
			waitSubscribers(t, ctx, []*redisServer{to}, tc.want, "{"+prefix+"}:r:lobby", 2)
			testutil.Eventually(t, func() bool {
				err := a.hub.BroadcastText(ctx, "lobby", "after the move", hub.ExceptID(sender.id))
				return err == nil
			}, "publishing after the move")
			testutil.Equal(t, string(peerB.recv(t).Data), "after the move")
			testutil.Equal(t, string(peerA.recv(t).Data), "after the move")
			testutil.Check(t, strings.Contains(b.logs.String(), "Redis dropped a subscription"), "B did not notice the slot move:\n%s", b.logs.String())
		})
	}
}

func slotOwner(t testing.TB, ctx context.Context, c *redis.ClusterClient, key string) *redisServer {
	t.Helper()
	m, err := c.MasterForKey(ctx, key)
	testutil.NoErr(t, err)
	return &redisServer{t: t, port: portOf(t, m.Options().Addr)}
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	var port int
	_, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	testutil.NoErr(t, err)
	return port
}

// waitSubscribers waits until the cluster has n subscribers on channel,
// counted on every master: sharded subscriptions sit on the slot's
// owner, classic ones on any master.
func waitSubscribers(t testing.TB, ctx context.Context, servers []*redisServer, mode redisbroker.PubSubMode, channel string, n int64) {
	t.Helper()
	count := func() int64 {
		var sum int64
		for _, s := range servers {
			c := redis.NewClient(&redis.Options{Addr: s.addr()})
			var m map[string]int64
			var err error
			if mode == redisbroker.ShardedPubSub {
				m, err = c.PubSubShardNumSub(ctx, channel).Result()
			} else {
				m, err = c.PubSubNumSub(ctx, channel).Result()
			}
			c.Close()
			if err != nil {
				return -1
			}
			sum += m[channel]
		}
		return sum
	}
	testutil.Eventually(t, func() bool { return count() == n }, "%s: %d subscribers, want %d", channel, count(), n)
}

// moveSlot migrates the slot of key, with its keys, from one master to
// another, the way redis-cli --cluster reshard does.
func moveSlot(t testing.TB, ctx context.Context, key string, from, to *redisServer) {
	t.Helper()
	src := redis.NewClient(&redis.Options{Addr: from.addr()})
	defer src.Close()
	dst := redis.NewClient(&redis.Options{Addr: to.addr()})
	defer dst.Close()
	slot, err := src.ClusterKeySlot(ctx, key).Result()
	testutil.NoErr(t, err)
	srcID, err := src.Do(ctx, "CLUSTER", "MYID").Text()
	testutil.NoErr(t, err)
	dstID, err := dst.Do(ctx, "CLUSTER", "MYID").Text()
	testutil.NoErr(t, err)
	testutil.NoErr(t, dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	testutil.NoErr(t, src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		testutil.NoErr(t, err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("MIGRATE: %v", err)
		}
	}
	testutil.NoErr(t, dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	testutil.NoErr(t, src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
}

// History on a Redis Cluster: Append's script declares the room's
// channel as a key, so that SPUBLISH from it is allowed on the slot's
// shard; both pub/sub flavours deliver the positions in order.
func TestClusterHistory(t *testing.T) {
	t.Parallel()
	servers := startCluster(t, 3)
	for _, mode := range []redisbroker.PubSubMode{redisbroker.ShardedPubSub, redisbroker.ClassicPubSub} {
		t.Run(mode.String(), func(t *testing.T) {
			ca, cb := newClusterClient(t, servers), newClusterClient(t, servers)
			prefix := "cluster-history-" + mode.String()
			logger, _ := testLogger(t)
			opts := &redisbroker.Options{Prefix: prefix, PubSub: mode, Logger: logger}
			// A cluster that just formed may take longer than Timeout to
			// confirm the first subscription: Open then says so and the
			// broker goes on subscribing; the test waits for the
			// subscriptions themselves.
			a, fromA, err := openBroker(t, ca, "A", opts)
			if err != nil {
				t.Logf("Open A: %v", err)
			}
			b, fromB, err := openBroker(t, cb, "B", opts)
			if err != nil {
				t.Logf("Open B: %v", err)
			}
			a.Subscribe("room")
			b.Subscribe("room")
			ctx := testutil.Ctx(t)
			waitSubscribers(t, ctx, servers, mode, "{"+prefix+"}:r:room", 2)
			var last hub.Position
			for i := range 20 {
				last, err = a.Append(ctx, text("room", fmt.Sprint(i)), size)
				testutil.NoErr(t, err)
			}
			for _, in := range []*inbox{fromA, fromB} {
				testutil.Eventually(t, func() bool { return len(in.messages("room")) == 20 }, "delivered %d of 20", len(in.messages("room")))
				checkSequence(t, "node", in.messages("room"), last.Epoch, 1, 20)
			}
			entries, head, err := b.History(ctx, "room", hub.Position{Epoch: last.Epoch, Offset: 15}, 0)
			testutil.NoErr(t, err)
			testutil.Equal(t, head, last)
			testutil.Equal(t, len(entries), 5)
		})
	}
}
