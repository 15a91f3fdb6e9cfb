package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
)

var chaosSeed = flag.Uint64("chaos.seed", 0, "TestChaos: random seed (0: from the clock; the report prints it)")

const (
	readLimit = 64 << 10 // wsroute's default Options.ReadLimit

	firehose = "firehose" // the busy room: server-side broadcasts of 4 KiB
)

// The room layout of a chaos run. Members alternate between nodes, so
// with Redis every room spans both.
var (
	chatRooms        = []string{"r0", "r1", "r2"}
	membersPerRoom   = 5 // the first two publish
	publishersPerRm  = 2
	firehoseMembers  = 3
	publishInterval  = 20 * time.Millisecond   // per publisher: 50 messages/s
	firehoseInterval = 2500 * time.Microsecond // 400 messages/s of 4 KiB
	stalledFirehose  = 4                       // stalled readers in the firehose
	stalledChat      = 1                       // and in r2
	chaosWorkers     = 4
)

// TestChaos runs the demo stack under a mix of well-behaved and hostile
// clients for -chaos.duration, in memory and with the Redis broker
// (Redis killed and restarted mid-run), and checks that nothing the
// design promises was broken. It prints its figures with -v.
//
// It is not parallel: it measures the process's goroutines, heap and
// descriptors, which other tests would disturb.
func TestChaos(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		measured(t, func() string { return runChaos(t, nil, nil) })
	})
	t.Run("redis", func(t *testing.T) {
		rs := startRedis(t)
		var opt *redis.Options
		if rs != nil {
			opt = &redis.Options{Addr: rs.addr()}
		} else {
			o, err := sharedRedis()
			if err != nil {
				skipOrFail(t, "no redis-server binary to start a private Redis (needed to restart it), and %v", err)
			}
			opt = o
			t.Log("no redis-server binary: using NEXIO_REDIS_URL, without a Redis restart")
		}
		measured(t, func() string { return runChaos(t, opt, rs) })
	})
}

// measured runs a chaos run between two measurements of the process and
// logs its report. The final measurement is taken after the test's
// other cleanups (registered later, so run earlier) have shut its
// servers down and made their state garbage.
func measured(t *testing.T, run func() string) {
	base := measure()
	samp := startSampler(50 * time.Millisecond)
	var rep string
	var peak usage
	t.Cleanup(func() {
		if rep == "" {
			samp.Stop()
			return // the run failed fatally
		}
		// The heap may keep a little: runtime and net/http caches.
		final := settle(t, base, 1<<20+gSlack(peak), 15*time.Second)
		t.Logf("\n%sresources: base  %v\n           peak  %v\n           final %v", rep, base, peak, final)
	})
	rep = run()
	peak = samp.Stop()
}

// chaosRun is the state of one run.
type chaosRun struct {
	t        *testing.T
	seed     uint64
	nodes    []*stack
	clients  []*redis.Client // one per node, with Redis
	brokers  []*redisbroker.Broker
	redis    *redisServer // nil: Redis is not restarted
	rdb      *redis.Client
	prefix   string
	members  []*member
	pubs     *pubLog
	tally    *tally
	text     clientText
	notReach sync.Map // probes of handshakes no handler may see

	pings, pongs                  atomic.Int64
	failsInjected, panicsInjected atomic.Int64
	outages                       []outage  // written by restartRedis, read after it ended
	rtt                           latencies // the echo prober's round trips
}

func (r *chaosRun) mustNotReach(probe string) { r.notReach.Store(probe, true) }

func runChaos(t *testing.T, redisOpt *redis.Options, rs *redisServer) string {
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := &chaosRun{t: t, seed: seed, redis: rs, pubs: newPubLog(), tally: newTally()}
	setupStart := time.Now()
	// Nodes: one in memory, two sharing Redis.
	if redisOpt == nil {
		r.nodes = []*stack{newStack(t, stackConfig{node: "A"})}
	} else {
		var b [4]byte
		rand.Read(b[:])
		r.prefix = "nexio-chaos-" + hex.EncodeToString(b[:])
		r.rdb = redis.NewClient(redisOpt)
		for _, name := range []string{"A", "B"} {
			c := redis.NewClient(redisOpt)
			r.clients = append(r.clients, c)
			newBroker := func(log *slog.Logger) hub.Broker {
				br := redisbroker.New(c, &redisbroker.Options{Prefix: r.prefix, PresenceTTL: 3 * time.Second, Logger: log})
				r.brokers = append(r.brokers, br)
				return br
			}
			r.nodes = append(r.nodes, newStack(t, stackConfig{node: name, broker: newBroker}))
		}
	}
	for i, n := range r.nodes {
		n.onBroadcast = func(room, msg string, start time.Time, err error) { r.pubs.record(i, msg, start, err != nil) }
	}

	ctx, cancel := context.WithTimeout(context.Background(), *chaosDuration+2*time.Minute)
	defer cancel()
	var pubIDs map[string][]string // room → its publishers
	r.members, pubIDs = r.startMembers(ctx)

	// Stalled readers join before broadcasting starts.
	var stalled []*rawConn
	var stalledProbes []string
	for i := range stalledFirehose + stalledChat {
		room, node := firehose, r.nodes[0]
		if i >= stalledFirehose {
			room, node = "r2", r.nodes[i%len(r.nodes)]
		}
		c, probe, err := r.stalledReader(ctx, i, room, node)
		testutil.NoErr(t, err)
		stalled = append(stalled, c)
		stalledProbes = append(stalledProbes, probe)
	}
	r.waitJoined(ctx, stalledFirehose, stalledChat)

	// The injection phase.
	// Ended by cancellation, not a deadline: with a deadline, a dial
	// fails with "i/o timeout" as soon as it passes, while Err stays nil
	// until the context's own timer has run, which a loaded machine
	// delays; the slowloris loop then counted dozens of failed dials.
	phase, endPhase := context.WithCancel(ctx)
	defer endPhase()
	defer time.AfterFunc(*chaosDuration, endPhase).Stop()
	start := time.Now()
	stopPub := make(chan struct{})
	var pubWG, faultWG sync.WaitGroup
	for _, m := range r.members {
		if !slices.Contains(pubIDs[m.room], m.id) || m.room == firehose {
			continue
		}
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			if _, err := m.publish(stopPub, publishInterval, strings.Repeat("p", 48)); err != nil {
				t.Errorf("publisher %s: %v", m.id, err)
			}
		}()
	}
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		r.firehose(stopPub)
	}()

	// Fault injectors, each with its own random source.
	for w := range chaosWorkers {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			r.injectFaults(phase, mrand.New(mrand.NewPCG(seed, uint64(w))))
		}()
	}
	faultWG.Add(1)
	go func() {
		defer faultWG.Done()
		r.echoProber(phase)
	}()
	for i, read := range []bool{true, false} {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			res, ok := r.pingFlood(phase, r.nodes[i%len(r.nodes)], i, read)
			r.tally.add("ping flood", res, ok)
		}()
	}
	for i := range 3 {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			for n := i; phase.Err() == nil; n += 3 {
				d, err := r.slowloris(phase, r.nodes[n%len(r.nodes)], n)
				switch {
				case phase.Err() != nil:
				case err != nil:
					r.tally.add("slowloris", err.Error(), false)
				default:
					rht := r.nodes[0].cfg.readHeaderTimeout
					ok := d >= rht-100*time.Millisecond && d <= rht+1500*time.Millisecond
					r.tally.add("slowloris", fmt.Sprintf("cut after %.1fs", d.Seconds()), ok)
				}
			}
		}()
	}
	faultWG.Add(1)
	go func() {
		defer faultWG.Done()
		r.storms(phase, start)
	}()
	if rs != nil {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			r.restartRedis(phase, start)
		}()
	}

	<-phase.Done()
	injected := time.Since(start)
	close(stopPub)
	pubWG.Wait()
	faultWG.Wait()

	// Drain: every member catches up with every publisher of its room.
	finals := make(map[string]map[string]int)
	for room, ids := range pubIDs {
		finals[room] = r.pubs.finals(ids)
	}
	drainStart := time.Now()
	for _, m := range r.members {
		for !m.caughtUp(finals[m.room]) && time.Since(drainStart) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
	}
	drained := time.Since(drainStart)

	// Presence spans the nodes, and was restored after the restart.
	if len(r.nodes) > 1 {
		r.checkPresence(ctx)
	}

	tShutdown := time.Now()
	hubStats := make([]hub.Stats, len(r.nodes))
	for i, n := range r.nodes {
		hubStats[i] = n.hub.Stats()
	}
	for _, m := range r.members {
		m.leave()
	}
	for _, c := range stalled {
		c.reset()
	}
	stallEnds := map[string]int{}
	for _, n := range r.nodes {
		n.shutdown()
	}
	for _, p := range stalledProbes {
		for _, n := range r.nodes {
			if e, ok := n.outcomes.probe(p); ok {
				stallEnds[fmt.Sprintf("closed %d %q", int(e.Code), e.Reason)]++
			}
		}
	}
	shutdownTook := time.Since(tShutdown)
	var brokerStats []redisbroker.Stats
	for _, b := range r.brokers {
		brokerStats = append(brokerStats, b.Stats())
	}
	for _, c := range r.clients {
		c.Close()
	}
	if r.rdb != nil {
		r.rdb.Close()
	}
	// Accounting.
	rep := &strings.Builder{}
	fmt.Fprintf(rep, "chaos run %q: %d node(s), set up in %v, injected for %v, drained in %v, shut down in %v, seed %d\n",
		t.Name(), len(r.nodes), start.Sub(setupStart).Round(time.Millisecond), injected.Round(time.Millisecond),
		drained.Round(time.Millisecond), shutdownTook.Round(time.Millisecond), seed)
	losses, delivered, expected := r.account(finals, rep)
	r.checkServerSide(rep, stallEnds)

	// Figures.
	var tcp, ws int64
	ends := map[string]int{}
	for _, n := range r.nodes {
		tcp += n.ln.accepted.Load()
		acc, e := n.outcomes.snapshot()
		ws += int64(acc)
		for k, v := range e {
			ends[k] += v
		}
	}
	fmt.Fprintf(rep, "connections: %d TCP accepted, %d WebSocket accepted\n", tcp, ws)
	fmt.Fprintf(rep, "  ends by outcome (server side):")
	for _, k := range sortedKeys(ends) {
		fmt.Fprintf(rep, " [%s: %d]", k, ends[k])
	}
	fmt.Fprintln(rep)
	fmt.Fprintf(rep, "faults injected: %d one-shot (%d kinds), and:\n%s", r.tally.total(oneShot), len(faults), r.tally.String())
	fmt.Fprintf(rep, "  pings sent %d by floods and bursts (pongs read by the reading flooder: %d)\n", r.pings.Load(), r.pongs.Load())
	fmt.Fprintf(rep, "  stalled readers (%d): %v\n", len(stalled), stallEnds)
	fmt.Fprintf(rep, "messages: %d expected by well-behaved members, %d delivered\n", expected, delivered)
	fmt.Fprintf(rep, "losses by reason:")
	if len(losses) == 0 {
		fmt.Fprintf(rep, " none")
	}
	for _, k := range sortedKeys(losses) {
		fmt.Fprintf(rep, " [%s: %d]", k, losses[k])
	}
	fmt.Fprintln(rep)
	for i, s := range hubStats {
		fmt.Fprintf(rep, "hub %s: broadcasts %d, messages out %d, slow disconnects %d, dropped %d, write errors %d, from other nodes %d, broker errors %d\n",
			r.nodes[i].cfg.node, s.Broadcasts, s.MessagesOut, s.SlowDisconnects, s.Dropped, s.WriteErrors, s.Received, s.BrokerErrors)
	}
	for i, s := range brokerStats {
		fmt.Fprintf(rep, "broker %s: published %d, publish errors %d, received %d, duplicates dropped %d, missed %d, reconnects %d, outages %d, presence errors %d\n",
			r.nodes[i].cfg.node, s.Published, s.PublishErrors, s.Received, s.Duplicates, s.Missed, s.Reconnects, s.Outages, s.PresenceErrors)
	}
	for _, o := range r.outages {
		fmt.Fprintf(rep, "Redis restart: killed at +%v, answering again %v later, every node resubscribed %v after the kill\n",
			o.from.Sub(start).Round(time.Millisecond), o.back.Sub(o.from).Round(time.Millisecond), o.to.Sub(o.from).Round(time.Millisecond))
	}
	fmt.Fprintf(rep, "echo prober while under attack: %s\n", r.rtt.String())
	lr := r.logs()
	fmt.Fprintf(rep, "log lines by level: %v (recovered panics logged: %d)\n", lr.lines, lr.panics)
	checked, _ := r.text.report()
	fmt.Fprintf(rep, "client-visible texts checked: %d\n", checked)
	return rep.String()
}

// startMembers connects every well-behaved member and publisher.
func (r *chaosRun) startMembers(ctx context.Context) ([]*member, map[string][]string) {
	t := r.t
	pubIDs := make(map[string][]string)
	var members []*member
	add := func(room string, i int) *member {
		id := fmt.Sprintf("%s-m%d", room, i)
		m, err := newMember(ctx, r.nodes[i%len(r.nodes)].addr, id, room, i%len(r.nodes), len(members))
		testutil.NoErr(t, err)
		members = append(members, m)
		return m
	}
	for _, room := range chatRooms {
		for i := range membersPerRoom {
			m := add(room, i)
			if i < publishersPerRm {
				pubIDs[room] = append(pubIDs[room], m.id)
			}
		}
	}
	for i := range firehoseMembers {
		add(firehose, i)
	}
	pubIDs[firehose] = []string{"fh"}
	return members, pubIDs
}

// waitJoined waits until every member is in its room on its node, and,
// with Redis, until both nodes are subscribed to every room.
func (r *chaosRun) waitJoined(ctx context.Context, stalledFH, stalledChat int) {
	want := make([]map[string]int, len(r.nodes))
	for i := range want {
		want[i] = make(map[string]int)
	}
	for _, m := range r.members {
		want[m.node][m.room]++
	}
	want[0][firehose] += stalledFH
	for i := range stalledChat {
		want[(stalledFH+i)%len(r.nodes)]["r2"]++
	}
	testutil.EventuallyWithin(r.t, 10*time.Second, func() bool {
		for i, n := range r.nodes {
			for room, k := range want[i] {
				if n.hub.Count(room) != k {
					return false
				}
			}
		}
		return true
	}, "members did not all join their rooms")
	if r.rdb != nil {
		testutil.EventuallyWithin(r.t, 10*time.Second, func() bool { return r.subscribed(ctx) }, "nodes did not subscribe to every room")
	}
}

// subscribed reports whether every node is subscribed to every room.
func (r *chaosRun) subscribed(ctx context.Context) bool {
	chans := make([]string, 0, len(chatRooms)+1)
	for _, room := range append(slices.Clone(chatRooms), firehose) {
		chans = append(chans, "{"+r.prefix+"}:r:"+room)
	}
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	n, err := r.rdb.PubSubNumSub(qctx, chans...).Result()
	if err != nil {
		return false
	}
	for _, ch := range chans {
		if n[ch] != int64(len(r.nodes)) {
			return false
		}
	}
	return true
}

// firehose broadcasts 4 KiB messages from the server side of node A
// until stop closes.
func (r *chaosRun) firehose(stop <-chan struct{}) {
	h := r.nodes[0].hub
	pad := strings.Repeat("f", 4000)
	t := time.NewTicker(firehoseInterval)
	defer t.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		msg := seqMessage("fh", seq, pad)
		start := time.Now()
		err := h.BroadcastText(context.Background(), firehose, msg)
		r.pubs.record(0, msg, start, err != nil)
	}
}

func (r *chaosRun) injectFaults(ctx context.Context, rng *mrand.Rand) {
	for ctx.Err() == nil {
		f := faults[rng.IntN(len(faults))]
		e := &faultEnv{
			r:     r,
			node:  r.nodes[rng.IntN(len(r.nodes))],
			src:   srcIP(groupChaos, rng.IntN(500)),
			probe: fmt.Sprintf("f-%x", rng.Uint64()),
			rng:   rng,
		}
		fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, ok := f.fn(fctx, e)
		cancel()
		r.tally.add(f.name, res, ok)
	}
}
