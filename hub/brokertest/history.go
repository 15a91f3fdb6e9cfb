package brokertest

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// historyNodes opens HistoryBrokers, or skips when the broker keeps no
// history.
func (s *suite) historyNodes(t *testing.T, names ...string) []*node {
	t.Helper()
	ns := s.nodes(t, names...)
	for _, n := range ns {
		if _, ok := n.b.(hub.HistoryBroker); !ok {
			t.Skipf("%T does not implement hub.HistoryBroker", n.b)
		}
	}
	return ns
}

func hb(n *node) hub.HistoryBroker { return n.b.(hub.HistoryBroker) }

// checkSequence checks that n delivered room's messages at offsets
// from..to of one epoch, each once and in order, and returns them.
func checkSequence(t *testing.T, n *node, room string, from, to uint64) []hub.Envelope {
	t.Helper()
	want := int(to - from + 1)
	testutil.Eventually(t, func() bool { return len(n.in.messages(room)) >= want },
		"%s delivered %d messages of %s, want %d: offsets %v", n.name, len(n.in.messages(room)), room, want, offsetsOf(n.in.messages(room)))
	got := n.in.messages(room)
	testutil.Equal(t, len(got), want)
	for i, e := range got {
		testutil.Check(t, e.Position.Offset == from+uint64(i) && e.Position.Epoch == got[0].Position.Epoch,
			"%s: message %d of %s is at %+v, want offset %d of epoch %q (no gap, no duplicate, in order)",
			n.name, i, room, e.Position, from+uint64(i), got[0].Position.Epoch)
	}
	return got
}

func offsetsOf(es []hub.Envelope) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Position.Offset
	}
	return out
}

func (s *suite) testHistory(t *testing.T) {
	t.Run("Agree", s.testHistoryAgree)
	t.Run("Range", s.testHistoryRange)
	t.Run("Expire", s.testHistoryExpire)
	t.Run("GapFill", s.testHistoryGapFill)
}

// Three nodes append to one room at once: the positions are one
// sequence, 1, 2, 3… of one epoch, assigned once; every node, the
// appending ones included, delivers every message once, in that order.
//
// A node's deliveries of a room start with a message it received after
// Subscribe, not necessarily the first one appended after it: the live
// copies of messages that several nodes append at once may travel out of
// offset order (NATS), and a node takes the first one it gets for where
// it starts. So every node first delivers one message, offset 1; from
// there on nothing may be missing.
func (s *suite) testHistoryAgree(t *testing.T) {
	t.Parallel()
	ns := s.historyNodes(t, "A", "B", "C")
	for _, n := range ns {
		n.b.Subscribe("h")
	}
	ready(t, ns[0], "h", ns[1], ns[2])
	ready(t, ns[1], "h", ns[0])
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 1000, TTL: time.Hour}
	first, err := hb(ns[0]).Append(ctx, text("A", "h", "first"), hc)
	testutil.NoErr(t, err)
	testutil.Equal(t, first.Offset, uint64(1))
	for _, n := range ns {
		checkSequence(t, n, "h", 1, 1)
	}
	const each = 40
	var (
		mu  sync.Mutex
		at  = map[uint64]string{1: "first"} // offset -> data
		wg  sync.WaitGroup
		eps = map[string]bool{first.Epoch: true}
	)
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := range each {
				data := fmt.Sprintf("%s:%d", n.name, i)
				e := text(n.name, "h", data)
				pos, err := hb(n).Append(ctx, e, hc)
				if err != nil {
					t.Errorf("%s: Append: %v", n.name, err)
					return
				}
				mu.Lock()
				if prev, dup := at[pos.Offset]; dup {
					t.Errorf("offset %d given to %q and %q", pos.Offset, prev, data)
				}
				at[pos.Offset] = data
				eps[pos.Epoch] = true
				mu.Unlock()
				if pos.Offset <= last {
					t.Errorf("%s: Append returned %d after %d", n.name, pos.Offset, last)
				}
				last = pos.Offset
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	testutil.Equal(t, len(eps), 1)
	total := uint64(len(ns)*each) + 1
	for off := uint64(1); off <= total; off++ {
		_, ok := at[off]
		testutil.Check(t, ok, "no Append returned offset %d: offsets must be 1…%d", off, total)
	}
	for _, n := range ns {
		got := checkSequence(t, n, "h", 1, total)
		for _, e := range got {
			testutil.Equal(t, string(e.Data), at[e.Position.Offset])
			testutil.Check(t, eps[e.Position.Epoch], "%s delivered epoch %q, Append returned another", n.name, e.Position.Epoch)
		}
		n.in.checkSerial(t)
	}
	entries, cur, err := hb(ns[2]).History(ctx, "h", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), int(total))
	testutil.Equal(t, cur.Offset, total)
	for _, en := range entries {
		testutil.Equal(t, string(en.Data), at[en.Position.Offset])
	}
}

// History lists what is kept after since, at most limit, oldest first,
// trimmed to Size, with the room's current position.
func (s *suite) testHistoryRange(t *testing.T) {
	t.Parallel()
	ns := s.historyNodes(t, "A", "B")
	a, b := ns[0], ns[1]
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 10, TTL: time.Hour}

	entries, cur, err := hb(b).History(ctx, "empty", hub.Position{}, 0)
	testutil.NoErr(t, err)
	testutil.Check(t, len(entries) == 0 && cur.Offset == 0, "a room with no messages: %d entries at %+v", len(entries), cur)

	var last hub.Position
	for i := 1; i <= 25; i++ {
		typ := wsroute.MessageText
		if i%2 == 0 {
			typ = wsroute.MessageBinary
		}
		last, err = hb(a).Append(ctx, hub.Envelope{Origin: "A", Room: "r", Type: typ, Data: []byte{byte(i), 0, 'x'}}, hc)
		testutil.NoErr(t, err)
		testutil.Equal(t, last.Offset, uint64(i))
	}
	check := func(since hub.Position, limit int, from, to int) {
		t.Helper()
		entries, cur, err := hb(b).History(ctx, "r", since, limit)
		testutil.NoErr(t, err)
		testutil.Equal(t, cur, last)
		testutil.Check(t, len(entries) == to-from+1, "History(%+v, %d): %d entries, want offsets %d…%d", since, limit, len(entries), from, to)
		for i, en := range entries {
			off := from + i
			testutil.Equal(t, en.Position, hub.Position{Epoch: last.Epoch, Offset: uint64(off)})
			testutil.Equal(t, string(en.Data), string([]byte{byte(off), 0, 'x'}))
			want := wsroute.MessageText
			if off%2 == 0 {
				want = wsroute.MessageBinary
			}
			testutil.Equal(t, en.Type, want)
		}
	}
	check(hub.Position{}, 0, 16, 25) // from the oldest kept: trimmed to Size
	check(hub.Position{Epoch: last.Epoch, Offset: 20}, 0, 21, 25)
	check(hub.Position{Epoch: last.Epoch, Offset: 20}, 2, 21, 22)
	check(hub.Position{}, 3, 16, 18)
	check(hub.Position{Epoch: last.Epoch, Offset: 3}, 0, 16, 25) // older than kept: what is kept
	check(hub.Position{Epoch: "another", Offset: 21}, 0, 16, 25) // another epoch: all that is kept
	entries, _, err = hb(b).History(ctx, "r", last, 0)
	testutil.NoErr(t, err)
	testutil.Equal(t, len(entries), 0)
}

// A room's history expires TTL after its last message; the next
// message starts a new epoch.
func (s *suite) testHistoryExpire(t *testing.T) {
	t.Parallel()
	ns := s.historyNodes(t, "A")
	a := ns[0]
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 10, TTL: time.Second}
	var first hub.Position
	for range 2 {
		var err error
		first, err = hb(a).Append(ctx, text("A", "short", "x"), hc)
		testutil.NoErr(t, err)
	}
	testutil.Eventually(t, func() bool {
		entries, _, err := hb(a).History(ctx, "short", hub.Position{}, 0)
		return err == nil && len(entries) == 0
	}, "history with a TTL of 1s still kept")
	pos, err := hb(a).Append(ctx, text("A", "short", "y"), hc)
	testutil.NoErr(t, err)
	testutil.Check(t, pos.Epoch != first.Epoch && pos.Offset == 1,
		"after the history expired, Append returned %+v (before: %+v); want offset 1 of a new epoch", pos, first)
}

// A node cut off the backend while another appends delivers what it
// missed, from the store, in order, once it is back.
func (s *suite) testHistoryGapFill(t *testing.T) {
	if s.cfg.isolate == nil {
		t.Skip("needs brokertest.WithIsolate to make a node miss live messages")
	}
	t.Parallel()
	ns := s.historyNodes(t, "A", "B")
	a, b := ns[0], ns[1]
	a.b.Subscribe("g")
	b.b.Subscribe("g")
	ready(t, a, "g", b)
	ctx := testutil.Ctx(t)
	hc := hub.History{Size: 100, TTL: time.Hour}
	appendN := func(from, to int) {
		for i := from; i <= to; i++ {
			pos, err := hb(a).Append(ctx, text("A", "g", strconv.Itoa(i)), hc)
			testutil.NoErr(t, err)
			testutil.Equal(t, pos.Offset, uint64(i))
		}
	}
	appendN(1, 3)
	checkSequence(t, b, "g", 1, 3)
	restore := s.cfg.isolate(t, b.b)
	appendN(4, 8) // B cannot hear these
	restore()
	// B is back; the next message reveals the gap if B did not fill it
	// on its own.
	var err error
	testutil.Eventually(t, func() bool {
		_, err = hb(a).Append(ctx, text("A", "g", "after"), hc)
		return err == nil
	}, "Append after B came back: %v", err)
	got := checkSequence(t, b, "g", 1, 9)
	for i, e := range got[:8] {
		testutil.Equal(t, string(e.Data), strconv.Itoa(i+1))
	}
	checkSequence(t, a, "g", 1, 9)
}
