package redisbroker_test

import (
	"errors"
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

// Redis is killed (SIGKILL) and restarted empty while node A broadcasts
// a numbered stream to members on A and B. Local delivery must go on,
// each broadcast during the outage must report an error quickly, none
// reported as published may be lost, and everything must resume by
// itself: subscriptions, presence, SendTo routes.
func TestRedisRestartMidStream(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca, cb := newClient(), newClient() // one per node, as separate processes have
	const prefix = "restart"           // a private server: no one else to collide with
	const timeout = time.Second
	opts := &redisbroker.Options{Timeout: timeout, PresenceTTL: 3 * time.Second}
	a := newNode(t, ca, prefix, "A", opts)
	b := newNode(t, cb, prefix, "B", opts)
	local := join(t, a, "stream", "local")
	remote := []*member{join(t, b, "stream", "r1"), join(t, b, "stream", "r2"), join(t, b, "stream", "r3")}
	subscribed(t, ca, prefix, "stream", 2)
	ctx := testutil.Ctx(t)

	type result struct {
		at   time.Time
		took time.Duration
		err  error
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			start := time.Now()
			err := a.hub.BroadcastText(ctx, "stream", strconv.Itoa(i))
			mu.Lock()
			results = append(results, result{start, time.Since(start), err})
			mu.Unlock()
		}
	}()
	firstOKAfter := func(at time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results {
			if r.at.After(at) && r.err == nil {
				return true
			}
		}
		return false
	}

	// The stream flows: 20 broadcasts in a row published. Before that, on
	// a loaded machine, a command may outlast Options.Timeout, which the
	// broker rightly reports as an outage (and refuses broadcasts for a
	// moment after); those are counted, so the restart's outage can be
	// told from them.
	var steadyAt time.Time
	testutil.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(results) < 20 {
			return false
		}
		for _, r := range results[len(results)-20:] {
			if r.err != nil {
				return false
			}
		}
		steadyAt = results[len(results)-20].at
		return true
	}, "the stream never flowed: %+v", a.broker.Stats())
	outagesBefore := map[*node]uint64{a: a.broker.Stats().Outages, b: b.broker.Stats().Outages}
	killedAt := time.Now()
	srv.kill()
	time.Sleep(time.Second)
	srv.start()
	restartedAt := time.Now()
	testutil.Eventually(t, func() bool {
		return a.broker.Stats().Reconnects >= 1 && b.broker.Stats().Reconnects >= 1 && firstOKAfter(restartedAt)
	}, "no recovery after the restart: A %+v, B %+v", a.broker.Stats(), b.broker.Stats())
	recoveredAt := time.Now()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	t.Logf("Redis down for %v; publishing resumed %v after the restart",
		restartedAt.Sub(killedAt).Round(time.Millisecond), recoveredAt.Sub(restartedAt).Round(time.Millisecond))

	// Every broadcast returned quickly; those that failed say why, and
	// only around the outage.
	var failed, slowest time.Duration
	nFailed := 0
	for i, r := range results {
		slowest = max(slowest, r.took)
		if r.err == nil {
			continue
		}
		nFailed++
		failed = max(failed, r.took)
		testutil.Check(t, errors.Is(r.err, hub.ErrPublish), "broadcast %d: %v, want hub.ErrPublish", i, r.err)
		testutil.Check(t, errors.Is(r.err, redisbroker.ErrUnavailable) || errors.Is(r.err, redisbroker.ErrTimeout),
			"broadcast %d: %v, want ErrUnavailable or ErrTimeout", i, r.err)
		if r.at.Before(steadyAt) {
			testutil.Check(t, outagesBefore[a] > 0, "broadcast %d failed before the kill, and A saw no outage: %v", i, r.err)
			continue
		}
		testutil.Check(t, r.at.After(killedAt.Add(-50*time.Millisecond)) && r.at.Before(recoveredAt),
			"broadcast %d failed outside the outage: %v", i, r.err)
	}
	t.Logf("%d broadcasts, %d failed; slowest call %v, slowest failure %v", len(results), nFailed, slowest, failed)
	testutil.Check(t, nFailed > 0, "no broadcast failed while Redis was down")
	// Slack for loaded CI machines; unbounded, a broadcast would wait for
	// go-redis' dial retries, seconds.
	testutil.Check(t, slowest <= timeout+time.Second, "a broadcast took %v, Options.Timeout is %v", slowest, timeout)
	testutil.Equal(t, a.broker.Stats().PublishErrors, uint64(nFailed))

	// Local delivery never stopped: A's member got every message, in order.
	for i := range results {
		testutil.Equal(t, string(local.recv(t).Data), strconv.Itoa(i))
	}
	// B's members got the messages reported as published, in order. The
	// exception is pub/sub's own: Redis answers PUBLISH before it writes
	// the message to subscribers, so a message acknowledged in the
	// instant Redis is killed may be lost. Those are allowed, and logged.
	inFlight := func(r result) bool {
		return r.at.Add(r.took).After(killedAt.Add(-10*time.Millisecond)) && r.at.Before(killedAt)
	}
	unreported := make(map[int]bool) // lost by a member of B, reported as published
	for _, m := range remote {
		arrived := make(map[int]bool)
		last := -1
		for quiet := false; !quiet; {
			select {
			case msg := <-m.msgs:
				n, err := strconv.Atoi(string(msg.Data))
				testutil.NoErr(t, err)
				testutil.Check(t, n > last, "member %s: message %d after %d", m.id, n, last)
				last = n
				arrived[n] = true
				r := results[n]
				testutil.Check(t, r.err == nil || errors.Is(r.err, redisbroker.ErrTimeout),
					"member %s: message %d arrived, but its broadcast reported %v", m.id, n, r.err)
			case <-time.After(500 * time.Millisecond):
				quiet = true
			}
		}
		var lost []int
		for i, r := range results {
			if r.err != nil || arrived[i] {
				continue
			}
			if r.at.Before(steadyAt) && outagesBefore[b] > 0 {
				// Published while B could not hear, before the stream
				// flowed: B saw that outage too.
				continue
			}
			testutil.Check(t, inFlight(r), "member %s: message %d was reported as published and never arrived", m.id, i)
			lost = append(lost, i)
			unreported[i] = true
		}
		if len(lost) > 0 {
			t.Logf("member %s: lost %v, acknowledged by Redis as it was killed", m.id, lost)
		}
	}
	// Those are counted where they were lost: B's members share B's
	// subscription, so B counts each once.
	testutil.Check(t, b.broker.Stats().Missed >= uint64(len(unreported)),
		"B lost %d messages reported as published, but counted %d missed", len(unreported), b.broker.Stats().Missed)

	// One warning per outage, and one line when it is over: not one per
	// message, nor one per path. The restart is one outage, after any the
	// broker saw before the stream flowed.
	for _, n := range []*node{a, b} {
		logs := n.logs.String()
		want := int(outagesBefore[n]) + 1
		testutil.Check(t, strings.Count(logs, "Redis unreachable") == want && strings.Count(logs, "Redis reachable again") == want,
			"node %s logged the outage %d times and its end %d times, want %d:\n%s", n.name,
			strings.Count(logs, "Redis unreachable"), strings.Count(logs, "Redis reachable again"), want, logs)
		testutil.Equal(t, n.broker.Stats().Outages, uint64(want))
	}

	// Redis restarted empty; presence and routes are written again.
	var ms []hub.Member
	testutil.Eventually(t, func() bool {
		var err error
		ms, err = a.hub.Presence(ctx, "stream")
		return err == nil && len(ms) == 4
	}, "presence after the restart: %v", ms)
	var err error
	testutil.Eventually(t, func() bool {
		err = a.hub.SendTo(ctx, remote[0].id, wsroute.MessageText, []byte("direct"))
		return err == nil
	}, "SendTo after the restart: %v", err)
	testutil.Equal(t, string(remote[0].recv(t).Data), "direct")
	testutil.Check(t, b.broker.Stats().Subscribed, "B is not subscribed: %+v", b.broker.Stats())
}
