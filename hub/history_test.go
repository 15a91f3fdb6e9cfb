package hub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// stampPos is the Stamp of these tests: "epoch offset data".
func stampPos(room string, pos hub.Position, typ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte) {
	return typ, fmt.Appendf(nil, "%s %d %s", pos.Epoch, pos.Offset, data)
}

// parseStamped splits what stampPos built.
func parseStamped(t testing.TB, s string) (hub.Position, string) {
	t.Helper()
	f := strings.SplitN(s, " ", 3)
	testutil.Check(t, len(f) == 3, "not a stamped message: %q", s)
	off, err := strconv.ParseUint(f[1], 10, 64)
	testutil.NoErr(t, err)
	return hub.Position{Epoch: f[0], Offset: off}, f[2]
}

// historyServer serves /ws/{room}?since=epoch:offset: each connection
// joins {room} with JoinFrom and only reads. Recoveries are recorded.
type historyServer struct {
	*httptest.Server
	hub *hub.Hub

	mu   sync.Mutex
	recs []hub.Recovery
}

func newHistoryServer(t testing.TB, h *hub.Hub, wopts *wsroute.Options) *historyServer {
	t.Helper()
	return newHistoryServerMode(t, h, wopts, modeHandler)
}

// newHistoryServerMode is newHistoryServer with its members held as mode
// says.
func newHistoryServerMode(t testing.TB, h *hub.Hub, wopts *wsroute.Options, mode serveMode) *historyServer {
	t.Helper()
	hs := &historyServer{hub: h}
	if wopts == nil {
		wopts = &wsroute.Options{}
	}
	mux := http.NewServeMux()
	mux.Handle("/ws/{room}", wopts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		since, err := parseSince(c.Query("since"))
		if err != nil {
			return c.Reject(http.StatusBadRequest, err.Error())
		}
		if err := c.Accept(ctx); err != nil {
			return err
		}
		rec, err := h.JoinFrom(c, c.Param("room"), since)
		if err != nil {
			return err
		}
		hs.mu.Lock()
		hs.recs = append(hs.recs, rec)
		hs.mu.Unlock()
		return mode.serve(ctx, c, func(context.Context, string) error { return nil })
	}))
	hs.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		hs.Server.Close()
	})
	return hs
}

func parseSince(s string) (hub.Position, error) {
	if s == "" {
		return hub.Position{}, nil
	}
	epoch, off, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(off, 10, 64)
	if !ok || err != nil {
		return hub.Position{}, fmt.Errorf("since must be epoch:offset, got %q", s)
	}
	return hub.Position{Epoch: epoch, Offset: n}, nil
}

// dial joins room from since and returns the client once the server
// recorded its recovery.
func (hs *historyServer) dial(t testing.TB, room string, since hub.Position) (*websocket.Conn, hub.Recovery) {
	t.Helper()
	hs.mu.Lock()
	n := len(hs.recs)
	hs.mu.Unlock()
	q := ""
	if !since.IsZero() {
		q = fmt.Sprintf("?since=%s:%d", since.Epoch, since.Offset)
	}
	c, _, err := websocket.Dial(testutil.Ctx(t), "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws/"+room+q, nil)
	testutil.NoErr(t, err)
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	var rec hub.Recovery
	testutil.Eventually(t, func() bool {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		if len(hs.recs) > n {
			rec = hs.recs[n]
			return true
		}
		return false
	}, "no recovery recorded")
	return c, rec
}

func publishN(t testing.TB, h *hub.Hub, room string, from, to int) hub.Position {
	t.Helper()
	var pos hub.Position
	for i := from; i <= to; i++ {
		var err error
		pos, err = h.Publish(context.Background(), room, wsroute.MessageText, []byte(fmt.Sprint("m", i)))
		testutil.NoErr(t, err)
	}
	return pos
}

// TestPublishAndHistory: offsets 1, 2, 3 … in one epoch; History lists
// what is kept after since, at most limit, the newest last; the oldest
// beyond Size are gone.
func TestPublishAndHistory(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{History: hub.History{Size: 5}})
	defer h.Shutdown(context.Background())
	ctx := context.Background()
	entries, cur, err := h.History(ctx, "r", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 0)
	// An empty room stands at offset 0 of its epoch.
	testutil.Check(t, cur.Epoch != "" && cur.Offset == 0, "an empty room's position is %+v, want offset 0 of an epoch", cur)

	var first hub.Position
	for i := 1; i <= 8; i++ {
		pos, err := h.Publish(ctx, "r", wsroute.MessageText, []byte(fmt.Sprint("m", i)))
		testutil.NoErr(t, err)
		if i == 1 {
			first = pos
			testutil.Check(t, pos.Epoch != "" && len(pos.Epoch) < 16, "epoch %q", pos.Epoch)
			testutil.Equal(t, pos.Epoch, cur.Epoch)
		}
		testutil.Equal(t, pos, hub.Position{Epoch: first.Epoch, Offset: uint64(i)})
	}
	entries, cur, err = h.History(ctx, "r", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, cur, hub.Position{Epoch: first.Epoch, Offset: 8})
	testutil.Equal(t, len(entries), 5)
	for i, e := range entries {
		testutil.Equal(t, e.Position.Offset, uint64(4+i))
		testutil.Equal(t, string(e.Data), fmt.Sprint("m", 4+i))
		testutil.Equal(t, e.Type, wsroute.MessageText)
	}
	entries, _, err = h.History(ctx, "r", hub.Position{Epoch: first.Epoch, Offset: 5}, 2)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 2)
	testutil.Equal(t, string(entries[0].Data)+","+string(entries[1].Data), "m6,m7")
	// Another epoch: from the oldest kept.
	entries, _, err = h.History(ctx, "r", hub.Position{Epoch: "other", Offset: 7}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 5)

	// A second hub is a new incarnation: a new epoch.
	h2 := hub.New(&hub.Options{History: hub.History{Size: 5}})
	defer h2.Shutdown(context.Background())
	pos, err := h2.Publish(ctx, "r", wsroute.MessageText, []byte("x"))
	testutil.NoErr(t, err)
	testutil.Check(t, pos.Epoch != first.Epoch, "two hubs share epoch %q", pos.Epoch)
	testutil.Equal(t, pos.Offset, uint64(1))
}

// TestJoinFromRecovers: a member that left at offset k and comes back
// gets k+1 … exactly once, in order, then live messages; what its client
// receives of a replayed message is byte-identical to what a live member
// received of it.
func TestJoinFromRecovers(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			testJoinFromRecovers(t, mode)
		})
	}
}

func testJoinFromRecovers(t *testing.T, mode serveMode) {
	h := hub.New(&hub.Options{History: hub.History{Size: 100}, Stamp: stampPos})
	hs := newHistoryServerMode(t, h, nil, mode)
	live, _ := hs.dial(t, "r", hub.Position{})
	pos := publishN(t, h, "r", 1, 10)
	var liveMsgs []string
	for range 10 {
		liveMsgs = append(liveMsgs, read(t, live))
	}
	back, rec := hs.dial(t, "r", hub.Position{Epoch: pos.Epoch, Offset: 3})
	testutil.Equal(t, rec, hub.Recovery{Recovered: true, Missed: 7, Position: pos})
	for i := 4; i <= 10; i++ {
		testutil.Equal(t, read(t, back), liveMsgs[i-1])
	}
	publishN(t, h, "r", 11, 11)
	p, data := parseStamped(t, read(t, back))
	testutil.Equal(t, p.Offset, uint64(11))
	testutil.Equal(t, data, "m11")

	// Up to date: nothing to replay, recovered.
	_, rec = hs.dial(t, "r", hub.Position{Epoch: pos.Epoch, Offset: 11})
	testutil.Equal(t, rec, hub.Recovery{Recovered: true, Position: hub.Position{Epoch: pos.Epoch, Offset: 11}})
}

// TestJoinFromEmptyRoom: a member of a room that kept nothing yet
// stands at offset 0 of the room's epoch, and resuming from there gets
// every message published since.
func TestJoinFromEmptyRoom(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{History: hub.History{Size: 100}, Stamp: stampPos})
	hs := newHistoryServer(t, h, nil)
	_, rec := hs.dial(t, "empty", hub.Position{})
	testutil.Check(t, rec.Recovered && rec.Position.Epoch != "" && rec.Position.Offset == 0,
		"joining an empty room: %+v, want recovered at offset 0 of an epoch", rec)
	pos := publishN(t, h, "empty", 1, 3)
	testutil.Equal(t, pos.Epoch, rec.Position.Epoch)
	back, rec2 := hs.dial(t, "empty", rec.Position)
	testutil.Equal(t, rec2, hub.Recovery{Recovered: true, Missed: 3, Position: pos})
	p, data := parseStamped(t, read(t, back))
	testutil.Equal(t, p.Offset, uint64(1))
	testutil.Equal(t, data, "m1")
}

// TestJoinFromNotRecovered: since of another epoch, older than what is
// kept, or from the future: Recovered is false, nothing at all is
// replayed (never a part), and the member gets live messages.
func TestJoinFromNotRecovered(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{History: hub.History{Size: 5}, Stamp: stampPos})
	hs := newHistoryServer(t, h, nil)
	pos := publishN(t, h, "r", 1, 20)
	testCases := []struct {
		name  string
		since func(cur hub.Position) hub.Position
	}{
		{"another epoch", func(cur hub.Position) hub.Position { return hub.Position{Epoch: "gone", Offset: cur.Offset - 1} }},
		{"older than kept", func(cur hub.Position) hub.Position { return hub.Position{Epoch: cur.Epoch, Offset: cur.Offset - 6} }},
		{"from the future", func(cur hub.Position) hub.Position { return hub.Position{Epoch: cur.Epoch, Offset: cur.Offset + 1} }},
	}
	for _, tc := range testCases {
		c, rec := hs.dial(t, "r", tc.since(pos))
		testutil.Equal(t, rec, hub.Recovery{Recovered: false, Position: pos})
		next, err := h.Publish(context.Background(), "r", wsroute.MessageText, []byte(tc.name))
		testutil.NoErr(t, err)
		p, data := parseStamped(t, read(t, c)) // the first thing it gets is live
		testutil.Equal(t, p, next)
		testutil.Equal(t, data, tc.name)
		pos = next
	}
	// The oldest kept one still recovers.
	_, rec := hs.dial(t, "r", hub.Position{Epoch: pos.Epoch, Offset: pos.Offset - 5})
	testutil.Equal(t, rec.Recovered, true)
	testutil.Equal(t, rec.Missed, 5)
}

// TestReplayLargerThanQueue: a replay of 1,000 messages to a member
// whose queue holds 16 is handed over as the queue drains: the client,
// reading normally, gets all 1,000 then the live ones, and is not
// disconnected as a slow consumer.
func TestReplayLargerThanQueue(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{QueueMessages: 16, History: hub.History{Size: 2000}, Stamp: stampPos})
	hs := newHistoryServer(t, h, nil)
	pos := publishN(t, h, "r", 1, 1000)
	c, rec := hs.dial(t, "r", hub.Position{Epoch: pos.Epoch, Offset: 0})
	testutil.Equal(t, rec, hub.Recovery{Recovered: true, Missed: 1000, Position: pos})
	// Live messages published while the replay is being handed over
	// come after it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishN(t, h, "r", 1001, 1010)
	}()
	for i := 1; i <= 1010; i++ {
		p, data := parseStamped(t, read(t, c))
		testutil.Equal(t, p.Offset, uint64(i))
		testutil.Equal(t, data, fmt.Sprint("m", i))
	}
	<-done
	st := h.Stats()
	testutil.Equal(t, st.SlowDisconnects, 0)
	testutil.Equal(t, st.Dropped, 0)
	testutil.Equal(t, h.Count("r"), 1)
}

// TestJoinFromSeam publishes from several goroutines while members leave
// and rejoin with JoinFrom in a loop, each from the last position it
// received: every member's sequence must be exactly 1..N, with no gap
// and no duplicate at any seam.
func TestJoinFromSeam(t *testing.T) {
	t.Parallel()
	const n = 300
	h := hub.New(&hub.Options{History: hub.History{Size: n}, Stamp: stampPos})
	hs := newHistoryServer(t, h, nil)
	runSeam(t, []*historyServer{hs}, []*hub.Hub{h, h, h, h}, n, 4)
}

// runSeam publishes n messages to room "seam" from one goroutine per
// entry of pubs while members rejoin on random servers in a loop.
// Publishers stay at most a window of messages ahead of the slowest
// member, so that publishing goes on through every member's rejoins
// rather than ending before the first.
func runSeam(t *testing.T, servers []*historyServer, pubs []*hub.Hub, n, members int) {
	t.Helper()
	first, err := pubs[0].Publish(context.Background(), "seam", wsroute.MessageText, []byte("first"))
	testutil.NoErr(t, err)
	start := hub.Position{Epoch: first.Epoch}

	progress := make([]atomic.Uint64, members) // each member's last offset
	slowest := func() uint64 {
		low := uint64(n)
		for i := range progress {
			low = min(low, progress[i].Load())
		}
		return low
	}
	var sent atomic.Uint64
	sent.Store(1)
	var wg sync.WaitGroup
	errs := make(chan error, members+len(pubs))
	for p, h := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				for sent.Load() > slowest()+32 {
					runtime.Gosched()
				}
				if sent.Add(1) > uint64(n) {
					return
				}
				if _, err := h.Publish(context.Background(), "seam", wsroute.MessageText, []byte(fmt.Sprint("p", p))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rejoinLoop(servers, start, n, &progress[i])
			progress[i].Store(uint64(n)) // done or failed: publishers stop waiting for it
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, hs := range servers {
		hs.mu.Lock()
		for _, rec := range hs.recs {
			testutil.Check(t, rec.Recovered, "a rejoin was not recovered: %+v", rec)
		}
		t.Logf("%d rejoins on %s", len(hs.recs), hs.URL)
		hs.mu.Unlock()
	}
}

// rejoinLoop is one member of runSeam: it reads a few messages, drops its
// connection, and comes back from the last one it got, until it has all
// n.
func rejoinLoop(servers []*historyServer, last hub.Position, n int, progress *atomic.Uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for joins := 0; last.Offset < uint64(n); joins++ {
		url := "ws" + strings.TrimPrefix(servers[rand.IntN(len(servers))].URL, "http") + "/ws/seam"
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("%s?since=%s:%d", url, last.Epoch, last.Offset), nil)
		if err != nil {
			return err
		}
		for range 1 + rand.IntN(12) {
			_, b, err := c.Read(ctx)
			if err != nil {
				c.CloseNow()
				return fmt.Errorf("after %v: %w", last, err)
			}
			f := strings.SplitN(string(b), " ", 3)
			off, _ := strconv.ParseUint(f[1], 10, 64)
			got := hub.Position{Epoch: f[0], Offset: off}
			if want := (hub.Position{Epoch: last.Epoch, Offset: last.Offset + 1}); got != want {
				c.CloseNow()
				return fmt.Errorf("join %d: got %v after %v: a gap or a duplicate", joins, got, last)
			}
			last = got
			progress.Store(last.Offset)
			if last.Offset == uint64(n) {
				break
			}
		}
		c.CloseNow()
	}
	return nil
}

// TestHistoryTTL: a room's messages are dropped TTL after its last one;
// a member coming back after that is not recovered.
func TestHistoryTTL(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{History: hub.History{Size: 10, TTL: 50 * time.Millisecond}})
	defer h.Shutdown(context.Background())
	pos := publishN(t, h, "r", 1, 3)
	testutil.Eventually(t, func() bool {
		entries, _, err := h.History(context.Background(), "r", hub.Position{}, 0)
		return err == nil && len(entries) == 0
	}, "history did not expire")
	_, cur, _ := h.History(context.Background(), "r", hub.Position{}, 0)
	testutil.Equal(t, cur, pos) // the position stays: a member at it missed nothing
	next := publishN(t, h, "r", 4, 4)
	testutil.Equal(t, next, hub.Position{Epoch: pos.Epoch, Offset: 4})
}

// TestHistoryOffCostsNothing: without History, Publish is Broadcast and
// a broadcast allocates nothing but its copy of the data.
func TestHistoryOffCostsNothing(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	rs := newRoomServer(t, &hub.Options{SlowConsumer: hub.DropNewest}, nil)
	rs.dial(t, "r")
	rs.joined(t, "r", 1)
	pos, err := rs.hub.Publish(context.Background(), "r", wsroute.MessageText, []byte("x"))
	testutil.NoErr(t, err)
	testutil.Equal(t, pos, hub.Position{})
	entries, cur, err := rs.hub.History(context.Background(), "r", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 0)
	testutil.Equal(t, cur, hub.Position{})
	msg := []byte("hello")
	allocs := testing.AllocsPerRun(200, func() {
		rs.hub.Broadcast(context.Background(), "nobody", wsroute.MessageText, msg)
	})
	testutil.Check(t, allocs <= 1, "a broadcast without history allocates %v times", allocs)
}

// seamMsg is the Seam of TestJoinFromSeamMessage: "seam epoch offset
// recovered missed".
func seamMsg(room string, c *wsroute.Conn, r hub.Recovery) (wsroute.MessageType, []byte) {
	return wsroute.MessageText, fmt.Appendf(nil, "seam %s %d %v %d", r.Position.Epoch, r.Position.Offset, r.Recovered, r.Missed)
}

// TestJoinFromSeamMessage: with Options.Seam, each member gets exactly
// the replay, then the seam's message standing at the last replayed
// position, then the live messages from the next offset on, while others
// publish all the time.
func TestJoinFromSeamMessage(t *testing.T) {
	t.Parallel()
	const n = 600
	h := hub.New(&hub.Options{History: hub.History{Size: n}, Stamp: stampPos, Seam: seamMsg})
	hs := newHistoryServer(t, h, nil)
	first, err := h.Publish(context.Background(), "seam", wsroute.MessageText, []byte("m"))
	testutil.NoErr(t, err)

	done := make(chan error, 1)
	go func() {
		for range n - 1 {
			if _, err := h.Publish(context.Background(), "seam", wsroute.MessageText, []byte("m")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	ctx := testutil.Ctx(t)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws/seam"
	last := hub.Position{Epoch: first.Epoch}
	for joins := 0; last.Offset < n; joins++ {
		c, _, err := websocket.Dial(ctx, fmt.Sprintf("%s?since=%s:%d", url, last.Epoch, last.Offset), nil)
		testutil.NoErr(t, err)
		since, replayed, sawSeam := last, 0, false
		for reads := 2 + rand.IntN(30); reads > 0 || !sawSeam; reads-- {
			if sawSeam && last.Offset == n {
				break
			}
			_, b, err := c.Read(ctx)
			testutil.NoErr(t, err)
			if strings.HasPrefix(string(b), "seam ") {
				var pos hub.Position
				var recovered bool
				var missed int
				_, err := fmt.Sscanf(string(b), "seam %s %d %v %d", &pos.Epoch, &pos.Offset, &recovered, &missed)
				testutil.NoErr(t, err)
				testutil.Check(t, !sawSeam, "join %d: a second seam message: %s", joins, b)
				testutil.Check(t, recovered && missed == replayed && pos == last,
					"join %d from %v: seam %q after %d replayed messages ending at %v", joins, since, b, replayed, last)
				sawSeam = true
				continue
			}
			pos, _ := parseStamped(t, string(b))
			testutil.Check(t, pos == hub.Position{Epoch: last.Epoch, Offset: last.Offset + 1},
				"join %d: got %v after %v (seam seen: %v)", joins, pos, last, sawSeam)
			last = pos
			if !sawSeam {
				replayed++
			}
		}
		c.CloseNow()
	}
	testutil.NoErr(t, <-done)
}

// TestSendToAfterJoinFromFollowsTheSeam: a message sent to a member
// after JoinFrom returned reaches it after that JoinFrom's replay and
// seam message, even while the replay is still waiting to be written
// (here: the member joined before Accept, so nothing is written yet).
func TestSendToAfterJoinFromFollowsTheSeam(t *testing.T) {
	t.Parallel()
	h := hub.New(&hub.Options{History: hub.History{Size: 10}, Stamp: stampPos, Seam: seamMsg})
	defer h.Shutdown(context.Background())
	pos := publishN(t, h, "r", 1, 3)
	srv := httptest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if _, err := h.JoinFrom(c, "r", hub.Position{Epoch: pos.Epoch, Offset: 1}); err != nil {
			return err
		}
		if err := h.SendTo(ctx, c.ID(), wsroute.MessageText, []byte("welcome")); err != nil {
			return err
		}
		if err := c.Accept(ctx); err != nil {
			return err
		}
		_, err := c.ReceiveText(ctx)
		return err
	}))
	defer srv.Close()
	ctx := testutil.Ctx(t)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	testutil.NoErr(t, err)
	defer c.CloseNow()
	var got []string
	for range 4 {
		_, b, err := c.Read(ctx)
		testutil.NoErr(t, err)
		got = append(got, string(b))
	}
	e := pos.Epoch
	want := []string{e + " 2 m2", e + " 3 m3", "seam " + e + " 3 true 2", "welcome"}
	testutil.Equal(t, strings.Join(got, " | "), strings.Join(want, " | "))
}

// TestOnEnqueueSeesTheReplay: replayed messages enter the member's queue
// like live ones, so Options.OnEnqueue sees each of them (a replay is
// queue pressure too).
func TestOnEnqueueSeesTheReplay(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	h := hub.New(&hub.Options{History: hub.History{Size: 10}, OnEnqueue: func(int) { calls.Add(1) }})
	hs := newHistoryServer(t, h, nil)
	pos := publishN(t, h, "r", 1, 5)
	testutil.Equal(t, calls.Load(), int64(0))
	c, rec := hs.dial(t, "r", hub.Position{Epoch: pos.Epoch, Offset: 0})
	testutil.Equal(t, rec.Missed, 5)
	for range 5 {
		read(t, c)
	}
	testutil.Equal(t, calls.Load(), int64(5))
}
