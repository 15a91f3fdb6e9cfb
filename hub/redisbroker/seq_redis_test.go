package redisbroker_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// The receiver's side of the sequence numbers, with messages published
// on the room's channel directly: a copy is dropped, a gap is counted,
// a version-1 message is delivered unchecked, and a room this node left
// and joined again starts afresh rather than counting what it was not
// subscribed to.
func TestSequenceNumbersOnTheWire(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	logger, logs := testLogger(t)
	b, in, err := openBroker(t, rc, "B", &redisbroker.Options{Prefix: prefix, Logger: logger})
	testutil.NoErr(t, err)
	b.Subscribe("room")
	subscribed(t, rc, prefix, "room", 1)
	ctx := testutil.Ctx(t)
	channel := "{" + prefix + "}:r:room"
	msg := func(data string) hub.Envelope {
		return hub.Envelope{Origin: "A", Room: "room", Type: wsroute.MessageText, Data: []byte(data)}
	}
	publish := func(p []byte) { testutil.NoErr(t, rc.Publish(ctx, channel, p).Err()) }

	const s1, s2 = 0xfeedface, 0xc0ffee
	publish(redisbroker.EncodeForTest(msg("1"), s1, 1))
	publish(redisbroker.EncodeForTest(msg("2"), s1, 2))
	publish(redisbroker.EncodeForTest(msg("2"), s1, 2)) // go-redis sent it again
	publish(redisbroker.EncodeForTest(msg("1"), s1, 1)) // and an older one
	publish(redisbroker.EncodeForTest(msg("5"), s1, 5)) // 3 and 4 lost
	publish(redisbroker.EncodeV1ForTest(msg("v1")))
	publish(redisbroker.EncodeV1ForTest(msg("v1")))          // unnumbered: not checked
	publish(redisbroker.EncodeForTest(msg("other"), s2, 40)) // A restarted: a new stream
	testutil.Eventually(t, func() bool { return in.len() == 6 }, "delivered %d of 6", in.len())
	var got []string
	for _, e := range in.all() {
		got = append(got, string(e.Data))
	}
	testutil.Equal(t, strings.Join(got, " "), "1 2 5 v1 v1 other")
	st := b.Stats()
	testutil.Equal(t, st.Duplicates, uint64(2))
	testutil.Equal(t, st.Missed, uint64(2))
	testutil.Equal(t, st.Received, uint64(6))
	testutil.Check(t, strings.Count(logs.String(), "never arrived") == 1, "want one warning about the lost messages:\n%s", logs)

	// Left the room: what is published meanwhile was not for this node.
	b.Unsubscribe("room")
	subscribed(t, rc, prefix, "room", 0)
	publish(redisbroker.EncodeForTest(msg("6"), s1, 6))
	b.Subscribe("room")
	subscribed(t, rc, prefix, "room", 1)
	publish(redisbroker.EncodeForTest(msg("9"), s1, 9))
	publish(redisbroker.EncodeForTest(msg("10"), s1, 10))
	testutil.Eventually(t, func() bool { return in.len() == 8 }, "delivered %d of 8", in.len())
	testutil.Equal(t, b.Stats().Missed, uint64(2))
	testutil.Equal(t, string(in.all()[7].Data), "10")
}

// A node whose own subscription connection breaks while Redis stays up
// misses what is published until it has resubscribed: the publisher is
// not told, but the node counts every such message in Stats.Missed. So
// whatever the timing, received and missed add up to what was published.
func TestSubscriptionLossIsCounted(t *testing.T) {
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
	n := 0
	send := func() {
		n++
		testutil.NoErr(t, a.Publish(ctx, hub.Envelope{Room: "room", Type: wsroute.MessageText, Data: []byte(strconv.Itoa(n))}))
	}
	for range 10 {
		send()
	}
	testutil.Eventually(t, func() bool { return in.len() == n }, "B got %d of %d", in.len(), n)

	// Cut B's subscription alone; A goes on publishing, and succeeds.
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
	// CLIENT KILL has closed the connection when it answers: what is
	// published from now until B has resubscribed cannot reach B.
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Reconnects == 0 || n < 20 {
		testutil.Check(t, time.Now().Before(deadline), "B did not resubscribe: %+v", b.Stats())
		send()
	}
	subscribed(t, ca, prefix, "room", 1)
	for range 10 {
		send()
	}
	testutil.Eventually(t, func() bool {
		st := b.Stats()
		return st.Received+st.Missed == uint64(n)
	}, "B received %d and counted %d missed of %d", b.Stats().Received, b.Stats().Missed, n)
	st := b.Stats()
	// How many were missed depends on how fast B resubscribed (sometimes
	// none): the invariant above is what must hold.
	t.Logf("B received %d and missed %d of %d", st.Received, st.Missed, n)
	testutil.Equal(t, st.Duplicates, uint64(0))
	testutil.Equal(t, a.Stats().PublishErrors, uint64(0))
	// What arrived, arrived in order.
	last := 0
	for _, e := range in.all() {
		k, err := strconv.Atoi(string(e.Data))
		testutil.NoErr(t, err)
		testutil.Check(t, k > last, "message %d after %d", k, last)
		last = k
	}
	t.Logf("%d published; B received %d, counted %d missed", n, st.Received, st.Missed)
}
