package redisbroker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
)

// appended is what a stream of Append calls returned.
type appended struct {
	mu  sync.Mutex
	ok  map[hub.Position]string // position -> data, for the calls that succeeded
	seq []hub.Position          // in the order they returned
	err int
}

// restartWhileAppending runs node A appending to a room with members on
// A and B while the private Redis srv is killed and started again, and
// returns what the appends returned and what each node delivered.
func restartWhileAppending(t *testing.T, srv *redisServer) (*appended, *inbox, *inbox, *redisbroker.Broker, *redisbroker.Broker) {
	t.Helper()
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca, cb := newClient(), newClient()
	logger, _ := testLogger(t)
	opts := &redisbroker.Options{Prefix: "history", Logger: logger, Timeout: time.Second}
	a, fromA, err := openBroker(t, ca, "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, cb, "B", opts)
	testutil.NoErr(t, err)
	a.Subscribe("room")
	b.Subscribe("room")
	subscribed(t, ca, "history", "room", 2)

	res := &appended{ok: make(map[hub.Position]string)}
	stop := make(chan struct{})
	done := make(chan struct{})
	succeeded := func() int {
		res.mu.Lock()
		defer res.mu.Unlock()
		return len(res.seq)
	}
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			data := strconv.Itoa(i)
			pos, err := a.Append(context.Background(), text("room", data), hub.History{Size: 100000, TTL: time.Hour})
			res.mu.Lock()
			if err != nil {
				res.err++
			} else {
				res.ok[pos] = data
				res.seq = append(res.seq, pos)
			}
			res.mu.Unlock()
		}
	}()
	testutil.Eventually(t, func() bool { return succeeded() >= 50 }, "no appends before the restart")
	srv.kill()
	time.Sleep(300 * time.Millisecond)
	before := succeeded()
	srv.start()
	testutil.Eventually(t, func() bool {
		return a.Stats().Reconnects >= 1 && b.Stats().Reconnects >= 1 && succeeded() >= before+50
	}, "appends did not resume after the restart: A %+v, B %+v", a.Stats(), b.Stats())
	close(stop)
	<-done
	res.mu.Lock()
	t.Logf("%d appends succeeded, %d failed", len(res.seq), res.err)
	res.mu.Unlock()
	testutil.Check(t, res.err > 0, "no Append failed while Redis was down")
	return res, fromA, fromB, a, b
}

// Redis with an append-only file (fsync always) is killed and restarted
// while a node appends: the epoch is kept, every node delivers the room's
// messages exactly once and in order with no gap (what pub/sub lost is
// read from the stream), and Missed stays 0.
func TestHistoryRedisRestartWithAOF(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	res, fromA, fromB, a, b := restartWhileAppending(t, srv)
	last := res.seq[len(res.seq)-1]
	for _, n := range []struct {
		name string
		in   *inbox
		b    *redisbroker.Broker
	}{{"A", fromA, a}, {"B", fromB, b}} {
		testutil.Eventually(t, func() bool { return uint64(len(n.in.messages("room"))) >= last.Offset },
			"%s delivered %d of %d", n.name, len(n.in.messages("room")), last.Offset)
		got := n.in.messages("room")
		checkSequence(t, n.name, got, last.Epoch, 1, last.Offset)
		for _, e := range got {
			if data, ok := res.ok[e.Position]; ok {
				testutil.Equal(t, string(e.Data), data)
			}
		}
		st := n.b.Stats()
		t.Logf("%s: %+v", n.name, st)
		testutil.Equal(t, st.Missed, uint64(0))
		testutil.Equal(t, st.Duplicates+st.Received >= last.Offset, true)
	}
	testutil.Equal(t, res.seq[0].Epoch, last.Epoch)
	_, head, err := b.History(testutil.Ctx(t), "room", hub.Position{}, 1)
	testutil.NoErr(t, err)
	testutil.Equal(t, head, last)
}

// Redis without persistence is killed and restarted: its history is
// gone, so the room starts a new epoch, and the first message a node
// delivers after the restart is offset 1 of that epoch: the Hub learns
// that what came before is lost, never a silent gap.
func TestHistoryRedisRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	res, fromA, fromB, a, b := restartWhileAppending(t, srv)
	first, last := res.seq[0], res.seq[len(res.seq)-1]
	testutil.Check(t, first.Epoch != last.Epoch, "the epoch survived a restart without persistence: %q", first.Epoch)
	for _, n := range []struct {
		name string
		in   *inbox
		b    *redisbroker.Broker
	}{{"A", fromA, a}, {"B", fromB, b}} {
		var got []hub.Envelope
		testutil.Eventually(t, func() bool {
			got = n.in.messages("room")
			return len(got) > 0 && got[len(got)-1].Position == last
		}, "%s did not deliver the last message %+v", n.name, last)
		// The old epoch from 1 with no gap (its last messages may be
		// lost with Redis), then the new one from 1 with no gap.
		split := 0
		for split < len(got) && got[split].Position.Epoch == first.Epoch {
			split++
		}
		checkSequence(t, n.name+", old epoch", got[:split], first.Epoch, 1, uint64(split))
		checkSequence(t, n.name+", new epoch", got[split:], last.Epoch, 1, last.Offset)
		for _, e := range got {
			if data, ok := res.ok[e.Position]; ok {
				testutil.Equal(t, string(e.Data), data)
			}
		}
		t.Logf("%s: %d of the old epoch, %d of the new; %+v", n.name, split, len(got)-split, n.b.Stats())
	}
}
