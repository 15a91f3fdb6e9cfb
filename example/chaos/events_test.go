package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
)

// The timed events of a chaos run: the echo prober, the storms, the
// Redis restarts, and the presence check after them.

// echoProber is a well-behaved client doing an echo round trip every
// 50 ms: how the attacks feel to everyone else.
func (r *chaosRun) echoProber(ctx context.Context) {
	c, _, err := dialWS(ctx, r.nodes[0].addr, srcIP(groupProbe, 0), "/ws/echo", nil)
	if err != nil {
		r.tally.add("echo prober", "dial: "+err.Error(), false)
		return
	}
	defer c.CloseNow()
	for i := 0; ctx.Err() == nil; i++ {
		msg := fmt.Sprintf("probe %d", i)
		t0 := time.Now()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Write(wctx, 1, []byte(msg))
		var got []byte
		if err == nil {
			_, got, err = c.Read(wctx)
		}
		cancel()
		if err != nil || string(got) != "Echo: "+msg {
			r.tally.add("echo prober", fmt.Sprintf("failed: %v %q", err, got), false)
			return
		}
		r.rtt.add(time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	c.Close(1000, "")
}

// cyclePeriod is how often the storms and the Redis restart recur: once
// in a short run, every 20 s in a long one.
func cyclePeriod() time.Duration { return min(*chaosDuration, 20*time.Second) }

// sleepUntil waits for at, or for ctx to end (false).
func sleepUntil(ctx context.Context, at time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// storms: a quarter into each cycle, 100 handshakes at once from one
// address; half-way, 150 from as many addresses.
func (r *chaosRun) storms(ctx context.Context, start time.Time) {
	p := cyclePeriod()
	for c := start; ; c = c.Add(p) {
		if !sleepUntil(ctx, c.Add(p/4)) {
			return
		}
		node := r.nodes[0]
		res := r.storm(node, 100, func(int) string { return srcIP(groupStormOne, 0) })
		// Every attempt gets an answer; at most PerIP are in at once
		// (those in hold until all are answered), and the rest see
		// 4003 (rate) or 1013 (per IP).
		ok := res["dial error"] == 0 && res["accepted"] <= node.cfg.maxPerIP &&
			res["accepted"]+res["close 4003"]+res["close 1013"] == 100
		r.tally.add("storm from one IP", fmt.Sprint(res), ok)
		if !sleepUntil(ctx, c.Add(p/2)) {
			return
		}
		node = r.nodes[len(r.nodes)-1]
		res = r.storm(node, 150, func(i int) string { return srcIP(groupStormMany, i) })
		r.tally.add("storm from many IPs", fmt.Sprint(res), res["accepted"] == 150)
	}
}

// storm makes n handshakes at once on /ws/echo; those accepted do an
// echo round trip and hold the connection until every handshake of the
// storm has its answer, so that "at most PerIP in at once" holds however
// long a loaded machine takes to answer them all.
func (r *chaosRun) storm(node *stack, n int, src func(int) string) map[string]int {
	var mu sync.Mutex
	res := map[string]int{}
	var answered, wg sync.WaitGroup
	answered.Add(n)
	allAnswered := make(chan struct{})
	go func() { // ends when every handshake has its answer
		answered.Wait()
		close(allAnswered)
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, key := r.stormOne(ctx, node, src(i))
			answered.Done()
			if c != nil {
				select {
				case <-allAnswered:
				case <-ctx.Done():
				}
				c.Close(1000, "")
			}
			mu.Lock()
			res[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// stormOne makes one handshake and echo round trip; it returns the
// connection, open, if it was accepted.
func (r *chaosRun) stormOne(ctx context.Context, node *stack, src string) (*websocket.Conn, string) {
	c, _, err := dialWS(ctx, node.addr, src, "/ws/echo", nil)
	if err != nil {
		return nil, "dial error"
	}
	if err := c.Write(ctx, 1, []byte("storm")); err != nil {
		c.CloseNow()
		code, _ := closeStatus(err)
		return nil, fmt.Sprintf("close %d", code)
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		c.CloseNow()
		code, why := closeStatus(err)
		r.text.check("close reason", why)
		return nil, fmt.Sprintf("close %d", code)
	}
	if string(got) != "Echo: storm" {
		c.CloseNow()
		return nil, "wrong echo"
	}
	return c, "accepted"
}

// restartRedis kills Redis a third into each cycle, starts it again
// 700 ms later, and records the outage until every node has
// resubscribed to every room.
func (r *chaosRun) restartRedis(ctx context.Context, start time.Time) {
	p := cyclePeriod()
	for c := start; sleepUntil(ctx, c.Add(p/3)); c = c.Add(p) {
		o := outage{from: time.Now()}
		r.redis.kill()
		time.Sleep(700 * time.Millisecond)
		r.redis.start()
		o.back = time.Now()
		deadline := time.Now().Add(20 * time.Second)
		for !r.subscribed(context.Background()) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		o.to = time.Now()
		r.outages = append(r.outages, o)
		if !r.subscribed(context.Background()) {
			r.tally.add("Redis restart", "nodes did not resubscribe within 20s", false)
			return
		}
		r.tally.add("Redis restart", "killed, restarted, every node resubscribed", true)
	}
}

// outage is a time Redis was down (from, back), until every node had
// resubscribed (to).
type outage struct{ from, back, to time.Time }

// checkPresence: every member of a stable room is listed on every node.
func (r *chaosRun) checkPresence(ctx context.Context) {
	for _, room := range []string{"r0", "r1"} {
		want := 0
		for _, n := range r.nodes {
			want += n.hub.Count(room)
		}
		for _, n := range r.nodes {
			var got int
			var err error
			ok := false
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				var ms []hub.Member
				ms, err = n.hub.Presence(ctx, room)
				got = len(ms)
				if err == nil && got == want {
					ok = true
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !ok {
				r.t.Errorf("node %s: presence of %s lists %d members (error %v), want %d, %d Redis restart(s) after joining",
					n.cfg.node, room, got, err, want, len(r.outages))
			}
		}
	}
}
