package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// messages returns the messages (not presence changes) in.got of room.
func (in *inbox) messages(room string) []hub.Envelope {
	var out []hub.Envelope
	for _, e := range in.all() {
		if e.Presence == nil && e.Room == room {
			out = append(out, e)
		}
	}
	return out
}

// checkSequence fails unless got holds, in order, exactly one message
// per offset from..to of epoch, carrying "<offset>" as data when
// dataIsOffset.
func checkSequence(t testing.TB, who string, got []hub.Envelope, epoch string, from, to uint64) {
	t.Helper()
	testutil.Check(t, uint64(len(got)) == to-from+1, "%s: %d messages, want %d (offsets %d..%d)", who, len(got), to-from+1, from, to)
	for i, e := range got {
		want := hub.Position{Epoch: epoch, Offset: from + uint64(i)}
		testutil.Check(t, e.Position == want, "%s: message %d at %+v, want %+v", who, i, e.Position, want)
	}
}

var size = hub.History{Size: 1000, TTL: time.Minute}

func text(room, data string) hub.Envelope {
	return hub.Envelope{Room: room, Type: wsroute.MessageText, Data: []byte(data)}
}

// An empty room already has an epoch, at offset 0 (so that a member
// joining it holds a position that stays valid), and the first Append
// continues it.
func TestEmptyRoomHasAnEpoch(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	a, _, err := openBroker(t, rc, "A", &redisbroker.Options{Prefix: testPrefix(t, rc)})
	testutil.NoErr(t, err)
	ctx := testutil.Ctx(t)
	entries, head, err := a.History(ctx, "room", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 0)
	testutil.Check(t, head.Epoch != "" && head.Offset == 0, "head of an empty room: %+v", head)
	pos, err := a.Append(ctx, text("room", "1"), size)
	testutil.NoErr(t, err)
	testutil.Equal(t, pos, hub.Position{Epoch: head.Epoch, Offset: 1})
	testutil.Equal(t, a.Stats().Appended, uint64(1))
}

// A room's history expires as a whole: all three of its keys go TTL
// after the last message, and the next message starts a new epoch that
// sorts after the old one.
func TestHistoryExpiryDeletesKeys(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a, _, err := openBroker(t, rc, "A", &redisbroker.Options{Prefix: prefix})
	testutil.NoErr(t, err)
	ctx := testutil.Ctx(t)
	h := hub.History{Size: 5, TTL: 300 * time.Millisecond}
	var first hub.Position
	for i := range 3 {
		pos, err := a.Append(ctx, text("r", strconv.Itoa(i)), h)
		testutil.NoErr(t, err)
		if i == 0 {
			first = pos
		}
	}
	testutil.Eventually(t, func() bool {
		n, err := rc.Exists(ctx, "{"+prefix+"}:h:r", "{"+prefix+"}:he:r", "{"+prefix+"}:ho:r").Result()
		return err == nil && n == 0
	}, "the history did not expire")
	pos, err := a.Append(ctx, text("r", "again"), h)
	testutil.NoErr(t, err)
	testutil.Check(t, pos.Epoch != first.Epoch && pos.Offset == 1, "after expiry: %+v, want offset 1 of a new epoch (was %s)", pos, first.Epoch)
	testutil.Check(t, pos.Epoch > first.Epoch, "epoch %q does not sort after %q", pos.Epoch, first.Epoch)
}

// appendSilently does what Append's script does, without publishing:
// for a subscriber, the message is lost on the way.
func appendSilently(t testing.TB, rc redis.UniversalClient, prefix, room string, origin, data string) {
	t.Helper()
	ctx := testutil.Ctx(t)
	off, err := rc.Incr(ctx, "{"+prefix+"}:ho:"+room).Result()
	testutil.NoErr(t, err)
	entry := redisbroker.EncodeEntryForTest(hub.Envelope{Origin: origin, Room: room, Type: wsroute.MessageText, Data: []byte(data)})
	testutil.NoErr(t, rc.XAdd(ctx, &redis.XAddArgs{Stream: "{" + prefix + "}:h:" + room, ID: fmt.Sprintf("%d-0", off), Values: []any{"m", entry}}).Err())
}

// A node that sees a room's offsets jump reads what it missed from the
// history, and delivers it before the later message.
func TestHistoryGapIsFilled(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	opts := &redisbroker.Options{Prefix: prefix}
	a, _, err := openBroker(t, rc, "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, rc, "B", opts)
	testutil.NoErr(t, err)
	b.Subscribe("room")
	subscribed(t, rc, prefix, "room", 1)
	ctx := testutil.Ctx(t)
	first, err := a.Append(ctx, text("room", "1"), size)
	testutil.NoErr(t, err)
	for i := 2; i <= 4; i++ {
		appendSilently(t, rc, prefix, "room", "A", strconv.Itoa(i))
	}
	_, err = a.Append(ctx, text("room", "5"), size)
	testutil.NoErr(t, err)
	testutil.Eventually(t, func() bool { return len(fromB.messages("room")) == 5 }, "B delivered %d of 5", len(fromB.messages("room")))
	got := fromB.messages("room")
	checkSequence(t, "B", got, first.Epoch, 1, 5)
	for i, e := range got {
		testutil.Equal(t, string(e.Data), strconv.Itoa(i+1))
	}
	st := b.Stats()
	testutil.Equal(t, st.Filled, uint64(3))
	testutil.Equal(t, st.Missed, uint64(0))

	// What the history no longer has (trimmed) is counted, never
	// silently skipped.
	for i := 6; i <= 8; i++ {
		appendSilently(t, rc, prefix, "room", "A", strconv.Itoa(i))
	}
	testutil.NoErr(t, rc.XTrimMaxLen(ctx, "{"+prefix+"}:h:room", 1).Err()) // keeps 8 only
	_, err = a.Append(ctx, text("room", "9"), size)
	testutil.NoErr(t, err)
	testutil.Eventually(t, func() bool { return len(fromB.messages("room")) == 7 }, "B delivered %d of 7", len(fromB.messages("room")))
	got = fromB.messages("room")
	testutil.Equal(t, got[5].Position.Offset, uint64(8))
	testutil.Equal(t, got[6].Position.Offset, uint64(9))
	testutil.Equal(t, b.Stats().Missed, uint64(2))
}

// The subscription connection of a node breaks while another node
// appends: the node delivers every message exactly once, in order, and
// Missed stays 0.
func TestHistorySurvivesSubscriptionLoss(t *testing.T) {
	t.Parallel()
	srv := startRedis(t) // private: CLIENT KILL must not reach other tests
	newClient := func(name string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr(), ClientName: name})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca, cb := newClient("node-a"), newClient("node-b")
	const prefix = "loss"
	logger, _ := testLogger(t)
	opts := &redisbroker.Options{Prefix: prefix, Logger: logger}
	a, _, err := openBroker(t, ca, "A", opts)
	testutil.NoErr(t, err)
	b, in, err := openBroker(t, cb, "B", opts)
	testutil.NoErr(t, err)
	b.Subscribe("room")
	subscribed(t, ca, prefix, "room", 1)
	ctx := testutil.Ctx(t)
	var last hub.Position
	send := func() {
		var err error
		last, err = a.Append(ctx, text("room", "x"), size)
		testutil.NoErr(t, err)
	}
	for range 10 {
		send()
	}
	kill := func() {
		list, err := ca.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
		testutil.NoErr(t, err)
		var id string
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name=node-b ") {
				id, _, _ = strings.Cut(strings.TrimPrefix(line, "id="), " ")
			}
		}
		testutil.Check(t, id != "", "no subscription connection of B in:\n%s", list)
		testutil.NoErr(t, ca.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
	}
	for round := 1; round <= 3; round++ {
		kill()
		deadline := time.Now().Add(10 * time.Second)
		for b.Stats().Reconnects < uint64(round) {
			testutil.Check(t, time.Now().Before(deadline), "B did not resubscribe: %+v", b.Stats())
			send()
		}
	}
	// The last messages, published while B was away, arrive with no
	// later message to reveal the gap: B compares with the stream when
	// it is back.
	kill()
	for range 5 {
		send()
	}
	testutil.Eventually(t, func() bool { return uint64(len(in.messages("room"))) == last.Offset },
		"B delivered %d of %d: %+v", len(in.messages("room")), last.Offset, b.Stats())
	checkSequence(t, "B", in.messages("room"), last.Epoch, 1, last.Offset)
	st := b.Stats()
	t.Logf("%d appended; B filled %d from the stream; %+v", last.Offset, st.Filled, st)
	testutil.Equal(t, st.Missed, uint64(0))
}

// History around a node's first join: what History returned is where
// the node's deliveries start, even for messages appended before its
// subscription took effect.
func TestHistoryThenSubscribeMissesNothing(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	opts := &redisbroker.Options{Prefix: prefix}
	a, _, err := openBroker(t, rc, "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, rc, "B", opts)
	testutil.NoErr(t, err)
	ctx := testutil.Ctx(t)
	for i := range 3 {
		_, err := a.Append(ctx, text("room", strconv.Itoa(i)), size)
		testutil.NoErr(t, err)
	}
	b.Subscribe("room")
	_, head, err := b.History(ctx, "room", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, head.Offset, uint64(3))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // appends while B's subscription is on its way
		defer wg.Done()
		for i := range 20 {
			if _, err := a.Append(context.Background(), text("room", strconv.Itoa(i)), size); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	testutil.Eventually(t, func() bool { return len(fromB.messages("room")) == 20 }, "B delivered %d of 20", len(fromB.messages("room")))
	checkSequence(t, "B", fromB.messages("room"), head.Epoch, 4, 23)
	testutil.Equal(t, b.Stats().Missed, uint64(0))
}

// Redis loses its last writes but keeps the epoch (a crash with
// appendfsync everysec, a failover to a lagging replica): the next
// messages would reuse the offsets of lost ones, which a node that
// delivered those takes for copies. The node that notices, when it
// compares with Redis after a reconnection, starts a new epoch instead,
// and the next message is offset 1 of it.
func TestHistoryRollbackStartsNewEpoch(t *testing.T) {
	t.Parallel()
	srv := startRedis(t) // private: CLIENT KILL must not reach other tests
	newClient := func(name string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr(), ClientName: name})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca, cb := newClient("node-a"), newClient("node-b")
	logger, logs := testLogger(t)
	opts := &redisbroker.Options{Prefix: "rb", Logger: logger}
	a, _, err := openBroker(t, ca, "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, cb, "B", opts)
	testutil.NoErr(t, err)
	b.Subscribe("room")
	subscribed(t, ca, "rb", "room", 1)
	ctx := testutil.Ctx(t)
	var first hub.Position
	for i := 1; i <= 10; i++ {
		first, err = a.Append(ctx, text("room", strconv.Itoa(i)), size)
		testutil.NoErr(t, err)
	}
	testutil.Eventually(t, func() bool { return len(fromB.messages("room")) == 10 }, "B delivered %d of 10", len(fromB.messages("room")))

	// Redis "loses" 8, 9 and 10.
	testutil.NoErr(t, ca.Set(ctx, "{rb}:ho:room", 7, 0).Err())
	testutil.NoErr(t, ca.XDel(ctx, "{rb}:h:room", "8-0", "9-0", "10-0").Err())
	list, err := ca.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	testutil.NoErr(t, err)
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name=node-b ") {
			id, _, _ = strings.Cut(strings.TrimPrefix(line, "id="), " ")
		}
	}
	testutil.NoErr(t, ca.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
	testutil.Eventually(t, func() bool {
		e, err := ca.Get(ctx, "{rb}:he:room").Result()
		return err == nil && e != first.Epoch
	}, "no new epoch after B saw the history go back")
	pos, err := a.Append(ctx, text("room", "after"), size)
	testutil.NoErr(t, err)
	testutil.Check(t, pos.Epoch != first.Epoch && pos.Offset == 1, "the next message is at %+v, want offset 1 of a new epoch", pos)
	testutil.Eventually(t, func() bool { return len(fromB.messages("room")) == 11 }, "B delivered %d of 11", len(fromB.messages("room")))
	testutil.Equal(t, fromB.messages("room")[10].Position, pos)
	testutil.Equal(t, b.Stats().Duplicates, uint64(0))
	testutil.Check(t, strings.Contains(logs.String(), "starting a new epoch"), "no warning:\n%s", logs)
}
