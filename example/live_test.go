package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

// liveFrame is any frame of /ws/live/{room}, decoded.
type liveFrame struct {
	Type      string     `json:"type"`
	Room      string     `json:"room"`
	Epoch     string     `json:"epoch"`
	Offset    uint64     `json:"offset"`
	Data      string     `json:"data"`
	Recovered bool       `json:"recovered"`
	Missed    int        `json:"missed"`
	Event     string     `json:"event"`
	Member    liveMember `json:"member"`
	raw       string
}

// next returns c's next frame that is not a presence frame (those come
// whenever someone joins or leaves).
func next(t *testing.T, c *wstest.Conn) liveFrame {
	t.Helper()
	for {
		f := nextAny(t, c)
		if f.Type != "presence" {
			return f
		}
	}
}

// nextAny returns c's next frame.
func nextAny(t *testing.T, c *wstest.Conn) liveFrame {
	t.Helper()
	text, err := c.ReceiveText()
	testutil.NoErr(t, err)
	var f liveFrame
	if err := json.Unmarshal([]byte(text), &f); err != nil {
		t.Fatalf("frame %q: %v", text, err)
	}
	f.raw = text
	return f
}

// expectSync reads up to the sync frame and checks it; the messages
// before it are returned.
func expectSync(t *testing.T, c *wstest.Conn, recovered bool, missed int) (liveFrame, []liveFrame) {
	t.Helper()
	var replay []liveFrame
	for {
		f := next(t, c)
		switch f.Type {
		case "message":
			replay = append(replay, f)
		case "sync":
			testutil.Check(t, f.Recovered == recovered && f.Missed == missed && len(replay) == missed,
				"sync %s after %d messages; want recovered:%v missed:%d", f.raw, len(replay), recovered, missed)
			return f, replay
		default:
			t.Fatalf("unexpected frame %s", f.raw)
		}
	}
}

// expectMessage reads the next message frame and checks its data and
// offset.
func expectMessage(t *testing.T, c *wstest.Conn, data string, offset uint64) liveFrame {
	t.Helper()
	f := next(t, c)
	testutil.Check(t, f.Type == "message" && f.Data == data && f.Offset == offset,
		"got %s, want message %q at offset %d", f.raw, data, offset)
	return f
}

func since(f liveFrame) string {
	return "since=" + url.QueryEscape(fmt.Sprintf("%s:%d", f.Epoch, f.Offset))
}

func TestLiveFramesAndResume(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 1000})
	ann := ta.dial(t, "/ws/live/lobby?name=ann", nil)
	sync, _ := expectSync(t, ann, true, 0)
	testutil.Equal(t, sync.Room, "lobby")
	testutil.Equal(t, sync.Offset, uint64(0))

	// The sender gets its own copy, with its position; the frame is
	// exactly the documented one.
	sent := []string{"one", `{"name":"ann","text":"two <b>"}`, "three"}
	var copies []liveFrame
	for i, m := range sent {
		testutil.NoErr(t, ann.SendText(m))
		copies = append(copies, expectMessage(t, ann, m, uint64(i+1)))
	}
	epoch := copies[0].Epoch
	testutil.Check(t, epoch != "", "no epoch in %s", copies[0].raw)
	testutil.Equal(t, copies[1].raw,
		`{"type":"message","room":"lobby","epoch":"`+epoch+`","offset":2,"data":"{\"name\":\"ann\",\"text\":\"two <b>\"}"}`)

	// Resuming after the first: the two others, byte-identical to their
	// live delivery, then the sync at the head.
	bob := ta.dial(t, "/ws/live/lobby?name=bob&"+since(copies[0]), nil)
	sync, replay := expectSync(t, bob, true, 2)
	testutil.Equal(t, replay[0].raw, copies[1].raw)
	testutil.Equal(t, replay[1].raw, copies[2].raw)
	testutil.Equal(t, sync.Offset, uint64(3))
	testutil.Equal(t, sync.Epoch, epoch)

	// Then live, offsets going up by one, for both.
	testutil.NoErr(t, bob.SendText("four"))
	expectMessage(t, bob, "four", 4)
	expectMessage(t, ann, "four", 4)

	// Resuming at the head replays nothing; a room is its own.
	carl := ta.dial(t, "/ws/live/lobby?"+since(sync), nil)
	expectSync(t, carl, true, 1) // "four" came after that sync
	other := ta.dial(t, "/ws/live/other", nil)
	sync, _ = expectSync(t, other, true, 0)
	testutil.Equal(t, sync.Offset, uint64(0))
	quiet(t, other, 50*time.Millisecond)

	// /ws/rooms/lobby is another room, and a pure relay still.
	relay := ta.dial(t, "/ws/rooms/lobby", nil)
	relay2 := ta.dial(t, "/ws/rooms/lobby", nil)
	testutil.Eventually(t, func() bool { return ta.rooms.Count("lobby") == 2 }, "relay joins")
	testutil.NoErr(t, relay.SendText("plain"))
	testutil.NoErr(t, relay2.ExpectText("plain"))
	quiet(t, ann, 50*time.Millisecond)
}

// quiet checks that c receives nothing but presence frames for d.
func quiet(t *testing.T, c *wstest.Conn, d time.Duration) {
	t.Helper()
	defer func(old time.Duration) { c.Timeout = old }(c.Timeout)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		c.Timeout = time.Until(deadline)
		text, err := c.ReceiveText()
		if errors.Is(err, wstest.ErrTimeout) {
			return
		}
		testutil.NoErr(t, err)
		if !strings.HasPrefix(text, `{"type":"presence"`) {
			t.Fatalf("got %s, want no message for %v", text, d)
		}
	}
}

func TestLiveLast(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 4})
	pub := ta.dial(t, "/ws/live/r", nil)
	expectSync(t, pub, true, 0)
	for i := 1; i <= 6; i++ {
		testutil.NoErr(t, pub.SendText(fmt.Sprint("m", i)))
		expectMessage(t, pub, fmt.Sprint("m", i), uint64(i))
	}
	testCases := []struct {
		query string
		first uint64 // offset of the first message replayed
		n     int
	}{
		{"last=0", 0, 0},
		{"last=2", 5, 2},
		{"last=4", 3, 4},
		{"last=100", 3, 4}, // only 4 are kept
	}
	for _, tc := range testCases {
		c := ta.dial(t, "/ws/live/r?"+tc.query, nil)
		sync, replay := expectSync(t, c, true, tc.n)
		testutil.Equal(t, sync.Offset, uint64(6))
		for i, f := range replay {
			testutil.Equal(t, f.Offset, tc.first+uint64(i))
			testutil.Equal(t, f.Data, fmt.Sprint("m", tc.first+uint64(i)))
		}
	}
	// Live continues after the seam.
	c := ta.dial(t, "/ws/live/r?last=1", nil)
	expectSync(t, c, true, 1)
	testutil.NoErr(t, pub.SendText("m7"))
	expectMessage(t, c, "m7", 7)
}

func TestLiveNotRecovered(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 3})
	pub := ta.dial(t, "/ws/live/r", nil)
	head, _ := expectSync(t, pub, true, 0)
	for i := 1; i <= 5; i++ {
		testutil.NoErr(t, pub.SendText(fmt.Sprint("m", i)))
		head = expectMessage(t, pub, fmt.Sprint("m", i), uint64(i))
	}
	testCases := []struct{ name, since string }{
		{"unknown epoch", "since=nope:3"},
		{"older than kept", "since=" + url.QueryEscape(head.Epoch+":1")},
	}
	for _, tc := range testCases {
		c := ta.dial(t, "/ws/live/r?"+tc.since, nil)
		sync, _ := expectSync(t, c, false, 0)
		testutil.Equal(t, sync.Epoch, head.Epoch)
		testutil.Equal(t, sync.Offset, head.Offset)
		// It joined live all the same.
		testutil.NoErr(t, pub.SendText("after "+tc.name))
		expectMessage(t, c, "after "+tc.name, sync.Offset+1)
		head = expectMessage(t, pub, "after "+tc.name, sync.Offset+1)
	}
}

// TestLiveHistoryOff is -history 0: live only, and a since is never
// recovered.
func TestLiveHistoryOff(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 0})
	a := ta.dial(t, "/ws/live/r", nil)
	expectSync(t, a, true, 0)
	testutil.NoErr(t, a.SendText("hello"))
	f := next(t, a)
	// Message frames all the same, with no position.
	testutil.Equal(t, f.raw, `{"type":"message","room":"r","epoch":"","offset":0,"data":"hello"}`)
	b := ta.dial(t, "/ws/live/r?since=e:1", nil)
	expectSync(t, b, false, 0)
	c := ta.dial(t, "/ws/live/r?last=10", nil)
	expectSync(t, c, true, 0)
	testutil.NoErr(t, a.SendText("again"))
	for _, x := range []*wstest.Conn{a, b, c} {
		f := next(t, x)
		testutil.Check(t, f.Type == "message" && f.Data == "again", "got %s", f.raw)
	}
}

func TestLiveBadQuery(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 10})
	testCases := []struct{ query, reason string }{
		{"since=abc", "since="},
		{"since=:3", "since="},
		{"since=e:-1", "since="},
		{"since=e:x", "since="},
		{"since=" + strings.Repeat("e", 65) + ":1", "since="},
		{"since=e:1&since=e:2", "since="},
		{"last=101", "last="},
		{"last=-1", "last="},
		{"last=x", "last="},
		{"last=", "last="},
		{"since=e:1&last=3", "not both"},
	}
	for _, tc := range testCases {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			c := ta.dial(t, "/ws/live/r?"+tc.query, nil)
			code, reason, err := c.ReadClose()
			testutil.NoErr(t, err)
			testutil.Equal(t, code, wsroute.StatusPolicyViolation)
			testutil.Check(t, strings.Contains(reason, tc.reason), "reason %q does not mention %q", reason, tc.reason)
		})
	}
	testutil.Equal(t, ta.liveRooms.Count("r"), 0)
}

func TestLiveBinaryGets1003(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 10})
	c := ta.dial(t, "/ws/live/r", nil)
	expectSync(t, c, true, 0)
	testutil.NoErr(t, c.SendBytes([]byte("bin")))
	testutil.NoErr(t, c.ExpectClose(wsroute.StatusUnsupportedData))
}

// TestLivePresence: joins and leaves reach the room's members as
// presence frames; a member without a name is known by its ID.
func TestLivePresence(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 10})
	ann := ta.dial(t, "/ws/live/p?name=ann", nil)
	expectSync(t, ann, true, 0)
	bob := ta.dial(t, "/ws/live/p?name=bob", nil)
	expectSync(t, bob, true, 0)

	join := nextPresence(t, ann)
	testutil.Equal(t, join.Event, "join")
	testutil.Equal(t, join.Room, "p")
	testutil.Equal(t, join.Member.Name, "bob")
	testutil.Check(t, join.Member.ID != "", "no id in %s", join.raw)
	testutil.Check(t, strings.HasPrefix(join.raw, `{"type":"presence","room":"p","event":"join","member":{"id":"`), "frame %s", join.raw)

	anon := ta.dial(t, "/ws/live/p", nil)
	expectSync(t, anon, true, 0)
	join = nextPresence(t, ann)
	testutil.Equal(t, join.Member.Name, join.Member.ID)
	// Bob may first hear ann's join: the hub reports a join after it
	// released the room, so one that came just before bob's may reach
	// him (late, but true). Nothing else comes before anon's.
	for {
		f := nextPresence(t, bob)
		if f.Member.Name == "ann" && f.Event == "join" {
			continue
		}
		testutil.Equal(t, f.Member.ID, join.Member.ID)
		break
	}

	bobID := nextPresenceFor(t, ann, "bob", "leave", func() { bob.Close(wsroute.StatusNormalClosure, "") })
	testutil.Check(t, bobID != join.Member.ID, "leave of the wrong member")

	// The snapshot the page reads once per connection agrees.
	var p presenceResponse
	testutil.Eventually(t, func() bool {
		ta.getJSON(t, "/live/p/presence", &p)
		return len(p.Members) == 2
	}, "presence: %+v", p)
	testutil.Equal(t, p.Members[1].Name, "ann")
}

func nextPresence(t *testing.T, c *wstest.Conn) liveFrame {
	t.Helper()
	for {
		f := nextAny(t, c)
		if f.Type == "presence" {
			return f
		}
	}
}

// nextPresenceFor runs do, then waits for the presence event of name on
// c, and returns the member's ID.
func nextPresenceFor(t *testing.T, c *wstest.Conn, name, event string, do func()) string {
	t.Helper()
	do()
	for {
		f := nextPresence(t, c)
		if f.Member.Name == name && f.Event == event {
			return f.Member.ID
		}
	}
}

// TestLiveResumeUnderLoad reconnects members in a loop with since= while
// messages are published concurrently: every member's sequence is
// exactly 1..N, nothing lost, nothing twice.
func TestLiveResumeUnderLoad(t *testing.T) {
	t.Parallel()
	ta := start(t, config{History: 1000})
	const total = 400
	pub := ta.dial(t, "/ws/live/load", nil)
	expectSync(t, pub, true, 0)
	// The publisher gets its own copies: read them, or it is a slow
	// consumer.
	pubDone := make(chan error, 1)
	var copies atomic.Int64
	go func() {
		for i := 1; i <= total; {
			text, err := pub.ReceiveText()
			if err != nil {
				pubDone <- err
				return
			}
			if strings.HasPrefix(text, `{"type":"message"`) {
				i++
				copies.Add(1)
			}
		}
		pubDone <- nil
	}()

	const readers = 3
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readAllWithBlinks(ta, r, total)
		}()
	}
	for i := 1; i <= total; i++ {
		// At most a window of messages in flight, so that no member's
		// queue fills on a busy machine (that is the slow-consumer
		// policy's test, not this one).
		testutil.Eventually(t, func() bool { return copies.Load() >= int64(i-32) }, "the publisher's copies stopped at %d", copies.Load())
		testutil.NoErr(t, pub.SendText(fmt.Sprint(i)))
	}
	wg.Wait()
	testutil.NoErr(t, <-pubDone)
	close(errs)
	for err := range errs {
		testutil.NoErr(t, err)
	}
}

// readAllWithBlinks reads room "load" until offset total, dropping the
// connection every few messages and resuming with since=.
func readAllWithBlinks(ta *testApp, r, total int) error {
	var pos string // epoch:offset of the last message seen
	var got uint64
	for blink := 0; got < uint64(total); blink++ {
		path := "/ws/live/load"
		if pos != "" {
			path += "?since=" + url.QueryEscape(pos)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := ta.srv.Dial(ctx, path, nil)
		cancel()
		if err != nil {
			return err
		}
		// Read a few frames (the replay, the sync, live ones), then
		// vanish without a word, as a phone switching networks does.
		for n := 0; n < 7+r && got < uint64(total); n++ {
			text, err := c.ReceiveText()
			if err != nil {
				c.CloseNow()
				return fmt.Errorf("reader %d after offset %d: %w", r, got, err)
			}
			var f liveFrame
			if err := json.Unmarshal([]byte(text), &f); err != nil {
				c.CloseNow()
				return err
			}
			switch f.Type {
			case "message":
				// A live-only first join may begin with messages
				// published while it joined: it starts at the first.
				if pos == "" {
					got = f.Offset - 1
				}
				if f.Offset != got+1 || f.Data != fmt.Sprint(got+1) {
					c.CloseNow()
					return fmt.Errorf("reader %d: after offset %d got %s", r, got, text)
				}
				got = f.Offset
				pos = fmt.Sprintf("%s:%d", f.Epoch, f.Offset)
			case "sync":
				if !f.Recovered {
					c.CloseNow()
					return fmt.Errorf("reader %d: not recovered: %s", r, text)
				}
				if pos == "" {
					pos = fmt.Sprintf("%s:%d", f.Epoch, f.Offset)
					got = f.Offset
				}
			}
		}
		c.CloseNow()
	}
	return nil
}

// TestLiveSpansInstancesOnRedis runs two instances on one Redis: a live
// room spans both, every member sees the same positions and bytes, a
// member that blinks resumes on the other instance with exactly what it
// missed, and presence frames cross.
func TestLiveSpansInstancesOnRedis(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	one := start(t, config{RedisURL: url, History: 100})
	two := start(t, config{RedisURL: url, History: 100})
	if one.liveHistory == 0 {
		t.Skip("this redisbroker keeps no history (not a hub.HistoryBroker): /ws/live is live only on Redis")
	}
	room := randomName("live-")

	ann := one.dial(t, "/ws/live/"+room+"?name=ann", nil)
	expectSync(t, ann, true, 0)
	bob := two.dial(t, "/ws/live/"+room+"?name=bob", nil)
	expectSync(t, bob, true, 0)

	// Bob's join reaches ann, on the other instance.
	join := nextPresence(t, ann)
	testutil.Check(t, join.Event == "join" && join.Member.Name == "bob", "got %s", join.raw)

	// Instance two's subscription to the room may take a moment to
	// reach Redis: send until one message crosses, then check exactly.
	liveCross(t, ann, bob)

	// Every message reaches both, with one position, byte for byte.
	var last liveFrame
	for i := range 3 {
		m := fmt.Sprint("hello ", i)
		testutil.NoErr(t, ann.SendText(m))
		a, b := next(t, ann), next(t, bob)
		testutil.Check(t, a.Type == "message" && a.Data == m, "ann got %s", a.raw)
		testutil.Equal(t, b.raw, a.raw)
		if i > 0 {
			testutil.Equal(t, a.Offset, last.Offset+1)
		}
		last = a
	}

	// Bob blinks; ann goes on; bob comes back on instance one.
	bobID := nextPresenceFor(t, ann, "bob", "leave", bob.CloseNow)
	testutil.Check(t, bobID == join.Member.ID, "leave of %s, want %s", bobID, join.Member.ID)
	var missed []liveFrame
	for i := range 3 {
		m := fmt.Sprint("missed ", i)
		testutil.NoErr(t, ann.SendText(m))
		missed = append(missed, expectMessage(t, ann, m, last.Offset+uint64(i)+1))
	}
	bob = one.dial(t, "/ws/live/"+room+"?name=bob&"+since(last), nil)
	sync, replay := expectSync(t, bob, true, 3)
	for i := range replay {
		testutil.Equal(t, replay[i].raw, missed[i].raw)
	}
	testutil.Equal(t, sync.Offset, missed[2].Offset)

	// And a late joiner on instance two reads the last ones from Redis.
	carl := two.dial(t, "/ws/live/"+room+"?last=2", nil)
	_, replay = expectSync(t, carl, true, 2)
	testutil.Equal(t, replay[0].raw, missed[1].raw)
	testutil.Equal(t, replay[1].raw, missed[2].raw)

	// An epoch Redis never made cannot be honoured.
	dave := two.dial(t, "/ws/live/"+room+"?since=nope:2", nil)
	sync, _ = expectSync(t, dave, false, 0)
	testutil.Equal(t, sync.Epoch, missed[2].Epoch)
}

// liveCross sends probes from a until b receives one, then reads both up
// to the last probe, so that what follows can be checked exactly.
func liveCross(t *testing.T, a, b *wstest.Conn) {
	t.Helper()
	lastSent, got := sendUntilCrossed(t, a, b, func(text string) (string, bool) {
		var f liveFrame
		if json.Unmarshal([]byte(text), &f) == nil && f.Type == "message" {
			return f.Data, true
		}
		return "", false
	})
	for f := next(t, a); f.Data != lastSent; f = next(t, a) {
	}
	for got != lastSent {
		got = next(t, b).Data
	}
}

// FuzzParseLiveQuery: any query string is either refused with a reason
// that fits a close frame, or parsed into values within the documented
// bounds, and a parsed since= comes back from its own formatting.
func FuzzParseLiveQuery(f *testing.F) {
	for _, s := range []string{"", "since=e:1", "last=50&name=ann", "since=a:b:3", "since=%00:1", "last=100", "last=101",
		"since=e:1&last=2", "name=%1B%5B31m", "since=:1", "since=e:18446744073709551615", "since=e:18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseLiveQuery(q)
		if err != nil {
			if n := len(err.Error()); n == 0 || n > 123 {
				t.Fatalf("reason of %d bytes: %q", n, err)
			}
			return
		}
		if lq.last < 0 || lq.last > maxLast || (lq.hasSince && lq.last != 0) {
			t.Fatalf("%q: last=%d with since %v", raw, lq.last, lq.hasSince)
		}
		if lq.hasSince {
			if lq.since.Epoch == "" || len(lq.since.Epoch) > maxEpoch {
				t.Fatalf("%q: epoch %q", raw, lq.since.Epoch)
			}
			back, err := parseLiveQuery(url.Values{"since": {fmt.Sprintf("%s:%d", lq.since.Epoch, lq.since.Offset)}})
			if err != nil || back.since != lq.since {
				t.Fatalf("%q: since %v does not round-trip: %v %v", raw, lq.since, back.since, err)
			}
		}
		if len([]rune(lq.name)) > maxName {
			t.Fatalf("%q: name %q too long", raw, lq.name)
		}
	})
}
