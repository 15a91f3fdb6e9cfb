package redisbroker_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/internal/testutil"
)

// TestHeartbeatCostDoesNotGrowWithConnections: a node's heartbeat
// refreshes its instance and room keys, not one key per connection:
// with 1,000 connections in one room, a handful of PEXPIREs per
// heartbeat, not 1,000 (which at 100,000 connections was 50,000 Redis
// commands a second).
func TestHeartbeatCostDoesNotGrowWithConnections(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.addr()})
	t.Cleanup(func() { rc.Close() })
	ctx := testutil.Ctx(t)
	b, _, err := openBroker(t, rc, "A", &redisbroker.Options{PresenceTTL: 600 * time.Millisecond})
	testutil.NoErr(t, err)
	const conns = 1000
	b.Subscribe("room")
	for i := range conns {
		testutil.NoErr(t, b.AddMember(ctx, "room", hub.Member{ConnID: fmt.Sprint("c", i), Node: "A"}))
	}
	testutil.Eventually(t, func() bool {
		ms, _ := b.Members(ctx, "room")
		keys, _ := rc.Keys(ctx, "*c:c*").Result()
		return len(ms) == conns && len(keys) == conns
	}, "the connections' keys were not all written")
	testutil.NoErr(t, rc.ConfigResetStat(ctx).Err())
	// PEXPIRE counts: a heartbeat (every 200 ms) refreshes the
	// instance's key and the room's two keys. Look once at least five
	// heartbeats' worth of them has been made.
	var calls int
	testutil.EventuallyWithin(t, 30*time.Second, func() bool {
		calls = pexpireCalls(t, rc)
		return calls >= 15
	}, "no heartbeat refreshed anything (PEXPIRE calls: %d)", calls)
	testutil.Check(t, calls < conns, "%d PEXPIREs by the first heartbeats of a node with %d connections: one per connection per heartbeat", calls, conns)

	// The connections are still found, and a removed one is not.
	testutil.NoErr(t, b.Publish(ctx, hub.Envelope{Origin: "B", Target: "c7", Type: 1, Data: []byte("x")}))
	testutil.NoErr(t, b.RemoveMember(ctx, "room", hub.Member{ConnID: "c7", Node: "A"}))
	testutil.Eventually(t, func() bool {
		err = b.Publish(ctx, hub.Envelope{Origin: "B", Target: "c7", Type: 1, Data: []byte("x")})
		return errors.Is(err, hub.ErrNoSuchConn)
	}, "SendTo a connection that left: %v", err)
}

// pexpireCalls reads PEXPIRE's call count from INFO commandstats.
func pexpireCalls(t *testing.T, rc *redis.Client) int {
	info, err := rc.Info(testutil.Ctx(t), "commandstats").Result()
	testutil.NoErr(t, err)
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_pexpire:calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		return n
	}
	return 0
}
