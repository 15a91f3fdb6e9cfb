package redisbroker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
)

// presenceEvents returns the presence changes in.got of room, as
// "+conn" for a join and "-conn" for a leave.
func (in *inbox) presenceEvents(room string) []string {
	var out []string
	for _, e := range in.all() {
		if e.Presence == nil || e.Room != room {
			continue
		}
		sign := "-"
		if e.Presence.Joined {
			sign = "+"
		}
		out = append(out, sign+e.Presence.Member.ConnID)
	}
	return out
}

// listFromEvents replays presence changes as a client keeping a list
// from them would.
func listFromEvents(events []string) []string {
	set := make(map[string]bool)
	for _, ev := range events {
		set[ev[1:]] = ev[0] == '+'
	}
	var out []string
	for id, in := range set {
		if in {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func memberIDs(ms []hub.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ConnID)
	}
	slices.Sort(out)
	return out
}

// A node that stops cleanly removes its members at once, and the other
// nodes deliver their leaves.
func TestPresenceCloseDeliversLeaves(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	opts := &redisbroker.Options{Prefix: prefix}
	a, _, err := openBroker(t, rc, "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, rc, "B", opts)
	testutil.NoErr(t, err)
	a.Subscribe("room")
	b.Subscribe("room")
	subscribed(t, rc, prefix, "room", 2)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, a.AddMember(ctx, "room", hub.Member{ConnID: "m1"}))
	testutil.NoErr(t, a.AddMember(ctx, "room", hub.Member{ConnID: "m2"}))
	testutil.NoErr(t, a.Close())
	testutil.Eventually(t, func() bool { return len(fromB.presenceEvents("room")) == 4 }, "B got %v", fromB.presenceEvents("room"))
	testutil.Equal(t, len(listFromEvents(fromB.presenceEvents("room"))), 0)
	ms, err := b.Members(ctx, "room")
	testutil.NoErr(t, err)
	testutil.Equal(t, len(ms), 0)
	testutil.Equal(t, b.Stats().Expired, uint64(0))
}

// Redis restarts empty: no node takes the others' members for dead
// (they write their presence again), and the lists kept from events
// still agree with Members afterwards.
func TestPresenceSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	logger, _ := testLogger(t)
	opts := &redisbroker.Options{Prefix: "p", Logger: logger, PresenceTTL: time.Second, Heartbeat: 200 * time.Millisecond}
	a, _, err := openBroker(t, newClient(), "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, newClient(), "B", opts)
	testutil.NoErr(t, err)
	a.Subscribe("room")
	b.Subscribe("room")
	ctx := testutil.Ctx(t)
	testutil.Eventually(t, func() bool { return a.Stats().Subscribed && b.Stats().Subscribed }, "not subscribed")
	subscribed(t, newClient(), "p", "room", 2)
	testutil.NoErr(t, a.AddMember(ctx, "room", hub.Member{ConnID: "ann"}))
	testutil.Eventually(t, func() bool { return len(fromB.presenceEvents("room")) == 1 }, "B got %v", fromB.presenceEvents("room"))

	srv.kill()
	time.Sleep(200 * time.Millisecond)
	srv.start()
	testutil.Eventually(t, func() bool { return a.Stats().Reconnects >= 1 && b.Stats().Reconnects >= 1 }, "no reconnection")
	// Several TTLs later, the lists agree.
	time.Sleep(3 * opts.PresenceTTL)
	ms, err := b.Members(ctx, "room")
	testutil.NoErr(t, err)
	events := fromB.presenceEvents("room")
	t.Logf("B's presence events: %v", events)
	testutil.Equal(t, slices.Equal(listFromEvents(events), memberIDs(ms)), true)
	testutil.Equal(t, slices.Equal(memberIDs(ms), []string{"ann"}), true)
	testutil.Equal(t, b.Stats().Expired, uint64(0))
}

// A node cut off from Redis for longer than PresenceTTL is given up by
// the others (they deliver its members' leaves); when it is back, it
// writes its presence again and says its members are still here, which
// the others deliver as joins. Lists kept from events end as Members.
func TestPresenceNodeBackAfterExpiry(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	const ttl, beat = time.Second, 200 * time.Millisecond
	opts := &redisbroker.Options{Prefix: prefix, PresenceTTL: ttl, Heartbeat: beat}
	watcher, in, err := openBroker(t, rc, "watcher", opts)
	testutil.NoErr(t, err)
	watcher.Subscribe("room")

	px := newProxy(t, rc.Options().Addr)
	o := *rc.Options()
	o.Addr = px.addr()
	o.MaxRetries = -1
	cutClient := redis.NewClient(&o)
	t.Cleanup(func() { cutClient.Close() })
	logger, _ := testLogger(t)
	nopts := *opts
	nopts.Logger = logger
	n, _, err := openBroker(t, cutClient, "island", &nopts)
	testutil.NoErr(t, err)
	n.Subscribe("room")
	subscribed(t, rc, prefix, "room", 2)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, n.AddMember(ctx, "room", hub.Member{ConnID: "castaway"}))
	testutil.Eventually(t, func() bool { return len(in.presenceEvents("room")) == 1 }, "join: %v", in.presenceEvents("room"))

	px.block()
	testutil.Eventually(t, func() bool { return len(in.presenceEvents("room")) == 2 }, "leave: %v", in.presenceEvents("room"))
	testutil.Equal(t, watcher.Stats().Expired, uint64(1))
	px.unblock()
	testutil.Eventually(t, func() bool { return len(in.presenceEvents("room")) == 3 }, "join again: %v", in.presenceEvents("room"))
	testutil.Equal(t, slices.Equal(in.presenceEvents("room"), []string{"+castaway", "-castaway", "+castaway"}), true)
	var ms []hub.Member
	testutil.Eventually(t, func() bool {
		ms, err = watcher.Members(ctx, "room")
		return err == nil && slices.Equal(memberIDs(ms), []string{"castaway"})
	}, "Members: %v %v", ms, err)
	// And no more: the "still here" was news once.
	time.Sleep(3 * beat)
	testutil.Equal(t, len(in.presenceEvents("room")), 3)
}
