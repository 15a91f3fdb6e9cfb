package natsbroker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/brokertest"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

func dump() string {
	var sb strings.Builder
	pprof.Lookup("goroutine").WriteTo(&sb, 1)
	return sb.String()
}

func offsets(es []hub.Envelope) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Position.Offset)
	}
	return out
}

// numRoutes asks a server's monitoring port how many routes it has.
func numRoutes(port int) int {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/routez")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var rz struct {
		NumRoutes int `json:"num_routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&rz) != nil {
		return -1
	}
	return rz.NumRoutes
}

type appendResult struct {
	data string
	pos  hub.Position
	took time.Duration
	err  error
}

// appendLoop appends numbered messages to room through b until stop is
// closed, one every few milliseconds, and returns what each returned.
func appendLoop(b *natsbroker.Broker, room string, stop <-chan struct{}) <-chan []appendResult {
	out := make(chan []appendResult, 1)
	go func() {
		var rs []appendResult
		defer func() { out <- rs }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			data := strconv.Itoa(i)
			start := time.Now()
			pos, err := b.Append(contextBackground(), hub.Envelope{Room: room, Type: wsroute.MessageText, Data: []byte(data)},
				hub.History{Size: 10000, TTL: time.Hour})
			rs = append(rs, appendResult{data, pos, time.Since(start), err})
		}
	}()
	return out
}

// indexAppends returns what appendLoop returned by data (unique), and
// how many appends succeeded.
func indexAppends(rs []appendResult) (map[string]appendResult, int) {
	byData := make(map[string]appendResult, len(rs))
	ok := 0
	for _, r := range rs {
		byData[r.data] = r
		if r.err == nil {
			ok++
		}
	}
	return byData, ok
}

// checkDelivered checks that in holds, for room, every message whose
// Append succeeded, each once and in Position order, within 10s of the
// last append. An Append that failed with ErrTimeout may have been
// stored all the same: such a message may be delivered too, in its
// place; nothing else may.
func checkDelivered(t *testing.T, name string, b *natsbroker.Broker, in *inbox, room string, rs []appendResult) {
	t.Helper()
	byData, want := indexAppends(rs)
	delivered := func() int {
		n := 0
		for _, e := range in.room(room) {
			if r, ok := byData[string(e.Data)]; ok && r.err == nil {
				n++
			}
		}
		return n
	}
	testutil.EventuallyWithin(t, 10*time.Second, func() bool { return delivered() >= want },
		"%s delivered %d of the %d messages appended: %v; %+v\n%s", name, delivered(), want, offsets(in.room(room)), b.Stats(), dump())
	var last hub.Position
	for i, e := range in.room(room) {
		r, ok := byData[string(e.Data)]
		testutil.Check(t, ok, "%s: delivery %d is %q, which was never appended", name, i, e.Data)
		if r.err == nil {
			testutil.Check(t, e.Position == r.pos, "%s: delivery %d (%q) at %+v, Append returned %+v", name, i, e.Data, e.Position, r.pos)
		} else {
			testutil.Check(t, errors.Is(r.err, natsbroker.ErrTimeout), "%s: delivery %d (%q) at %+v, whose Append failed with %v", name, i, e.Data, e.Position, r.err)
		}
		testutil.Check(t, i == 0 || (e.Position.Epoch == last.Epoch && e.Position.Offset == last.Offset+1),
			"%s: delivery %d at %+v after %+v: a gap, a copy or out of order", name, i, e.Position, last)
		last = e.Position
	}
}

// checkKept checks that a room's history holds every message whose
// Append succeeded, in order, and only messages that were appended (an
// Append that timed out may have been stored).
func checkKept(t *testing.T, entries []hub.Entry, rs []appendResult) {
	t.Helper()
	byData, want := indexAppends(rs)
	kept := 0
	for i, en := range entries {
		r, ok := byData[string(en.Data)]
		testutil.Check(t, ok, "history entry %d is %q, which was never appended", i, en.Data)
		if r.err == nil {
			kept++
			testutil.Equal(t, en.Position, r.pos)
		} else {
			testutil.Check(t, errors.Is(r.err, natsbroker.ErrTimeout), "history entry %d (%q) was appended with error %v", i, en.Data, r.err)
		}
		testutil.Check(t, i == 0 || en.Position.Offset == entries[i-1].Position.Offset+1, "history entry %d at %+v after %+v", i, en.Position, entries[max(i-1, 0)].Position)
	}
	testutil.Equal(t, kept, want)
}

// nats-server is killed (SIGKILL) and restarted on its store while a node
// appends to a room with history. Appends fail within Options.Timeout
// while it is down, with ErrUnavailable or ErrTimeout; every append that
// succeeded reaches both nodes once, in order, and the epoch survives
// (file storage).
func TestNATSRestartMidStream(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	const timeout = time.Second
	logger, _ := testLogger(t)
	opts := &natsbroker.Options{Prefix: "restart", Timeout: timeout, Logger: logger}
	a, fromA, err := openBroker(t, connect(t, srv.url()), "A", opts)
	testutil.NoErr(t, err)
	b, fromB, err := openBroker(t, connect(t, srv.url()), "B", opts)
	testutil.NoErr(t, err)
	a.Subscribe("stream")
	b.Subscribe("stream")

	stop := make(chan struct{})
	results := appendLoop(a, "stream", stop)
	testutil.Eventually(t, func() bool { return len(fromB.room("stream")) > 20 }, "B got %d messages before the kill", len(fromB.room("stream")))
	srv.kill()
	killedAt := time.Now()
	testutil.Eventually(t, func() bool { return !a.Stats().Connected }, "A did not notice the kill")
	time.Sleep(500 * time.Millisecond) // the outage itself: appends meanwhile must fail
	srv.start()
	restartedAt := time.Now()
	testutil.Eventually(t, func() bool { return a.Stats().Reconnects >= 1 && b.Stats().Reconnects >= 1 }, "no reconnect")
	n := len(fromB.room("stream"))
	testutil.Eventually(t, func() bool { return len(fromB.room("stream")) > n+20 }, "B got nothing new after the restart")
	close(stop)
	rs := <-results
	t.Logf("server down %v", restartedAt.Sub(killedAt).Round(time.Millisecond))

	failed := 0
	var slowest time.Duration
	var epochs = make(map[string]bool)
	for i, r := range rs {
		slowest = max(slowest, r.took)
		if r.err != nil {
			failed++
			testutil.Check(t, errors.Is(r.err, natsbroker.ErrUnavailable) || errors.Is(r.err, natsbroker.ErrTimeout),
				"append %d: %v, want ErrUnavailable or ErrTimeout", i, r.err)
			continue
		}
		epochs[r.pos.Epoch] = true
	}
	testutil.Check(t, failed > 0, "no append failed while the server was down")
	testutil.Check(t, slowest < timeout+time.Second, "an append took %v, Options.Timeout is %v", slowest, timeout)
	testutil.Equal(t, len(epochs), 1)
	t.Logf("%d appends, %d failed, slowest %v; B filled %d from the stream", len(rs), failed, slowest, b.Stats().Filled)
	checkDelivered(t, "A", a, fromA, "stream", rs)
	checkDelivered(t, "B", b, fromB, "stream", rs)
}

// A three-server NATS cluster loses the server node A is connected to,
// while A appends to a room with history: A fails over, and broadcasts,
// presence and history (replicated three times) carry on in the same
// epoch. Every append that succeeded reaches both nodes once, in order,
// live or filled from the stream, and is kept; then the lost server
// comes back and joins again.
func TestNATSClusterLosesANode(t *testing.T) {
	t.Parallel()
	var srvs []*natsServer
	cports := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	routes := ""
	for i, p := range cports {
		if i > 0 {
			routes += ","
		}
		routes += "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	mports := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	for i := range 3 {
		s := newNATSServer(t, fmt.Sprintf("n%d", i+1), "--cluster_name", "nexio", "--cluster",
			"nats://127.0.0.1:"+strconv.Itoa(cports[i]), "--routes", routes, "-m", strconv.Itoa(mports[i]))
		s.start()
		srvs = append(srvs, s)
	}
	// The test starts once the servers form a full mesh: every server
	// routes to both others, so losing one leaves the other two joined.
	fullMesh := func(want int, ports ...int) {
		for _, p := range ports {
			testutil.Eventually(t, func() bool { return numRoutes(p) == want }, "server with monitor port %d has %d routes", p, numRoutes(p))
		}
	}
	fullMesh(2, mports...)
	urls := srvs[0].url() + "," + srvs[1].url() + "," + srvs[2].url()
	// B reaches its first server through a proxy, so that the test can
	// make it miss messages after the loss: B then fails over too.
	px := brokertest.NewProxy(t, srvs[1].addr())
	urlsB := "nats://" + px.Addr() + "," + srvs[2].url()
	logger, logs := testLogger(t)
	opts := &natsbroker.Options{Prefix: "cluster", Replicas: 3, Timeout: 2 * time.Second, Logger: logger}
	a, fromA, _ := openBroker(t, connect(t, urls, nats.DontRandomize()), "A", opts)
	b, fromB, _ := openBroker(t, connect(t, urlsB, nats.DontRandomize()), "B", opts)
	a.Subscribe("room")
	b.Subscribe("room")
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 10000, TTL: time.Hour}
	testutil.NoErr(t, b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))

	// The cluster elects its JetStream leaders first: the first append
	// may wait for that.
	var err error
	testutil.Eventually(t, func() bool {
		_, err = a.Append(ctx, hub.Envelope{Room: "warm-up", Type: wsroute.MessageText, Data: []byte("x")}, hc)
		return err == nil
	}, "no append on the new cluster: %v", err)
	testutil.Eventually(t, func() bool { ms, _ := a.Members(ctx, "room"); return len(ms) == 1 }, "A does not see b1")

	stop := make(chan struct{})
	results := appendLoop(a, "room", stop)
	testutil.Eventually(t, func() bool { return len(fromB.room("room")) > 20 }, "B got %d messages before the loss", len(fromB.room("room")))
	srvs[0].kill() // A's server
	lostAt := time.Now()
	testutil.Eventually(t, func() bool { return a.Stats().Reconnects >= 1 }, "A did not fail over")
	// Recovery: the stream takes appends again, and they reach B.
	n := len(fromB.room("room"))
	testutil.EventuallyWithin(t, 30*time.Second, func() bool { return len(fromB.room("room")) > n+20 },
		"B got nothing new after the loss: %+v %+v", a.Stats(), b.Stats())
	t.Logf("appends reached B again %v after the loss", time.Since(lostAt).Round(time.Millisecond))
	// B misses what is appended while it fails over in turn: it reads
	// that from the stream, which has just elected new leaders.
	px.Cut()
	testutil.Eventually(t, func() bool { return b.Stats().Reconnects >= 1 }, "B did not fail over")
	n = len(fromB.room("room"))
	testutil.EventuallyWithin(t, 30*time.Second, func() bool { return len(fromB.room("room")) > n+20 },
		"B got nothing new after its failover: %+v %+v", a.Stats(), b.Stats())
	close(stop)
	rs := <-results
	failed := 0
	epochs := make(map[string]bool)
	for _, r := range rs {
		if r.err != nil {
			failed++
			continue
		}
		epochs[r.pos.Epoch] = true
	}
	testutil.Equal(t, len(epochs), 1)
	t.Logf("%d appends, %d failed; A filled %d, B filled %d", len(rs), failed, a.Stats().Filled, b.Stats().Filled)
	checkDelivered(t, "A", a, fromA, "room", rs)
	checkDelivered(t, "B", b, fromB, "room", rs)

	// Plain broadcasts and presence carry on too.
	testutil.Eventually(t, func() bool {
		a.Publish(ctx, hub.Envelope{Room: "room", Type: wsroute.MessageText, Data: []byte("plain")})
		for _, e := range fromB.room("room") {
			if string(e.Data) == "plain" {
				return true
			}
		}
		return false
	}, "B never heard A's broadcast after the loss")
	testutil.NoErr(t, b.AddMember(ctx, "room", hub.Member{ConnID: "b2", Node: "B"}))
	seenAt := time.Now()
	testutil.EventuallyWithin(t, 20*time.Second, func() bool { ms, _ := a.Members(ctx, "room"); return len(ms) == 2 },
		"A does not see b2: %+v %+v\n%s", a.Stats(), b.Stats(), logs)
	t.Logf("A saw b2 after %v", time.Since(seenAt))
	// Everything that was appended is kept, in order.
	var entries []hub.Entry
	testutil.Eventually(t, func() bool {
		entries, _, err = b.History(ctx, "room", hub.Position{}, 0)
		return err == nil
	}, "History after the loss: %v", err)
	checkKept(t, entries, rs)

	// The lost server comes back and joins the cluster again; appends
	// go on in the same epoch and reach both nodes.
	srvs[0].start()
	fullMesh(2, mports...)
	var pos hub.Position
	testutil.Eventually(t, func() bool {
		pos, err = a.Append(ctx, hub.Envelope{Room: "room", Type: wsroute.MessageText, Data: []byte("back")}, hc)
		return err == nil
	}, "append after the server came back: %v", err)
	testutil.Check(t, epochs[pos.Epoch], "after the server came back, Append returned %+v: another epoch", pos)
	for _, in := range []*inbox{fromA, fromB} {
		testutil.Eventually(t, func() bool {
			got := in.room("room")
			return len(got) > 0 && got[len(got)-1].Position == pos
		}, "a node did not deliver the append made after the server came back")
	}
}
