package natsbroker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub"
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

// checkDelivered checks that in holds, for room, exactly the messages
// whose Append succeeded, each once and in Position order.
func checkDelivered(t *testing.T, name string, b *natsbroker.Broker, in *inbox, room string, rs []appendResult) {
	t.Helper()
	ok := make(map[hub.Position]string)
	var positions []hub.Position
	for _, r := range rs {
		if r.err == nil {
			ok[r.pos] = r.data
			positions = append(positions, r.pos)
		}
	}
	testutil.EventuallyWithin(t, 10*time.Second, func() bool { return len(in.room(room)) >= len(positions) },
		"%s delivered %d messages, %d were appended: %v; %+v\n%s", name, len(in.room(room)), len(positions), offsets(in.room(room)), b.Stats(), dump())
	got := in.room(room)
	if len(got) != len(positions) {
		var sb strings.Builder
		pprof.Lookup("goroutine").WriteTo(&sb, 1)
		t.Logf("goroutines:\n%s", sb.String())
	}
	testutil.Equal(t, len(got), len(positions))
	for i, e := range got {
		testutil.Check(t, e.Position == positions[i], "%s: delivery %d at %+v, want %+v", name, i, e.Position, positions[i])
		testutil.Equal(t, string(e.Data), ok[e.Position])
	}
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

// A three-server NATS cluster loses the server node A is connected to:
// A fails over, and broadcasts, presence and history (replicated three
// times) carry on, in the same epoch, with nothing appended lost from
// the stream.
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
	for _, p := range mports {
		testutil.Eventually(t, func() bool { return numRoutes(p) == 2 }, "server with monitor port %d has %d routes", p, numRoutes(p))
	}
	urls := srvs[0].url() + "," + srvs[1].url() + "," + srvs[2].url()
	urlsB := srvs[1].url() + "," + srvs[2].url() + "," + srvs[0].url()
	logger, logs := testLogger(t)
	opts := &natsbroker.Options{Prefix: "cluster", Replicas: 3, Timeout: 2 * time.Second, Logger: logger}
	a, fromA, _ := openBroker(t, connect(t, urls, nats.DontRandomize()), "A", opts)
	b, fromB, _ := openBroker(t, connect(t, urlsB, nats.DontRandomize()), "B", opts)
	a.Subscribe("room")
	b.Subscribe("room")
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 1000, TTL: time.Hour}
	testutil.NoErr(t, b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))

	var mu sync.Mutex
	var rs []appendResult
	appendOne := func(data string) error {
		pos, err := a.Append(ctx, hub.Envelope{Room: "room", Type: wsroute.MessageText, Data: []byte(data)}, hc)
		mu.Lock()
		rs = append(rs, appendResult{data: data, pos: pos, err: err})
		mu.Unlock()
		return err
	}
	// The cluster elects its JetStream leaders first: the first append
	// may wait for that.
	var err error
	testutil.Eventually(t, func() bool { err = appendOne("first"); return err == nil }, "no append on the new cluster: %v", err)
	for i := range 20 {
		testutil.NoErr(t, appendOne(strconv.Itoa(i)))
	}
	testutil.Eventually(t, func() bool { ms, _ := a.Members(ctx, "room"); return len(ms) == 1 }, "A does not see b1")

	srvs[0].kill() // A's server
	testutil.Eventually(t, func() bool { return a.Stats().Reconnects >= 1 }, "A did not fail over")
	for i := 20; i < 40; i++ {
		data := strconv.Itoa(i)
		testutil.Eventually(t, func() bool { return appendOne(data) == nil }, "append %d after the loss of a server", i)
	}
	mu.Lock()
	done := append([]appendResult(nil), rs...)
	mu.Unlock()
	epochs := make(map[string]bool)
	for _, r := range done {
		if r.err == nil {
			epochs[r.pos.Epoch] = true
		}
	}
	testutil.Equal(t, len(epochs), 1)
	// Live delivery of what was appended during the failover is not
	// checked here: while the cluster elects new leaders a node's gap
	// filling can stall for longer than this test waits (a known
	// limitation, see doc.go). What was appended is kept, in order (below).
	_ = fromA
	_ = fromB

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
	testutil.EventuallyWithin(t, 40*time.Second, func() bool { ms, _ := a.Members(ctx, "room"); return len(ms) == 2 }, "A does not see b2: %+v %+v\n%s", a.Stats(), b.Stats(), logs)
	t.Logf("A saw b2 after %v", time.Since(seenAt))
	// History may time out while the cluster settles; then it answers.
	var entries []hub.Entry
	var cur hub.Position
	testutil.Eventually(t, func() bool {
		entries, cur, err = b.History(ctx, "room", hub.Position{}, 0)
		return err == nil
	}, "History after the loss: %v", err)
	testutil.Equal(t, len(entries), 41)
	testutil.Equal(t, cur.Offset, uint64(41))
	var ok []appendResult
	for _, r := range done {
		if r.err == nil {
			ok = append(ok, r)
		}
	}
	for i, en := range entries {
		testutil.Equal(t, en.Position, ok[i].pos)
		testutil.Equal(t, string(en.Data), ok[i].data)
	}
}
