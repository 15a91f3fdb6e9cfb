package brokertest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// A broadcast reaches every other subscribed node byte for byte, never
// its publisher, never a node not subscribed to the room.
func (s *suite) testBroadcast(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	a.b.Subscribe("room")
	b.b.Subscribe("room")
	c.b.Subscribe("room")
	b.b.Subscribe("other")
	ready(t, a, "room", b, c)
	ready(t, a, "other", b)
	ctx := testutil.Ctx(t)

	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	testutil.NoErr(t, a.b.Publish(ctx, hub.Envelope{Origin: "A", Room: "room", Type: wsroute.MessageBinary, Data: bin}))
	testutil.NoErr(t, a.b.Publish(ctx, text("A", "other", "for B only")))
	testutil.NoErr(t, a.b.Publish(ctx, text("A", "room", "héllo")))
	for _, n := range []*node{b, c} {
		testutil.Eventually(t, func() bool { return len(n.in.messages("room")) == 2 }, "%s got %q on room", n.name, datas(n.in.messages("room")))
		got := n.in.messages("room")
		testutil.Equal(t, got[0].Origin, "A")
		testutil.Equal(t, got[0].Type, wsroute.MessageBinary)
		testutil.Equal(t, string(got[0].Data), string(bin))
		testutil.Equal(t, got[1].Type, wsroute.MessageText)
		testutil.Equal(t, string(got[1].Data), "héllo")
		testutil.Check(t, got[0].Target == "" && got[0].Position.IsZero(), "a plain broadcast arrived as %+v", got[0])
	}
	// Messages of one publisher arrive in order: "other" was published
	// before the second message of room, which B already has.
	testutil.Equal(t, datas(b.in.messages("other")), "for B only")
	testutil.Equal(t, len(c.in.messages("other")), 0)
	testutil.Equal(t, len(a.in.all()), 0)
	a.in.checkSerial(t)
	b.in.checkSerial(t)

	// B leaves the room: nothing more for it, while C still hears it.
	b.b.Unsubscribe("room")
	testutil.Eventually(t, func() bool {
		testutil.NoErr(t, a.b.Publish(ctx, text("A", "room", "late")))
		testutil.NoErr(t, a.b.Publish(ctx, text("A", "other", "marker")))
		// Once a marker arrived after the unsubscribe took effect, no
		// "late" may follow it.
		got := b.in.all()
		return len(got) > 0 && string(got[len(got)-1].Data) == "marker"
	}, "B never settled after Unsubscribe")
	n := len(b.in.messages("room"))
	testutil.NoErr(t, a.b.Publish(ctx, text("A", "room", "after")))
	testutil.NoErr(t, a.b.Publish(ctx, text("A", "other", "final")))
	testutil.Eventually(t, func() bool { return strings.HasSuffix(datas(b.in.messages("other")), "final") }, "B never got the final marker")
	testutil.Equal(t, len(b.in.messages("room")), n)
	testutil.Eventually(t, func() bool { return strings.HasSuffix(datas(c.in.messages("room")), "after") }, "C stopped hearing room")
}

// Except travels to the other nodes, which leave that connection out.
func (s *suite) testExcept(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B")
	a, b := ns[0], ns[1]
	b.b.Subscribe("room")
	ready(t, a, "room", b)
	e := text("A", "room", "not for c7")
	e.Except = "c7"
	testutil.NoErr(t, a.b.Publish(testutil.Ctx(t), e))
	testutil.Eventually(t, func() bool { return len(b.in.messages("room")) == 1 }, "B got %q", datas(b.in.messages("room")))
	testutil.Equal(t, b.in.messages("room")[0].Except, "c7")
}

// A message for a connection reaches the node holding it, and only that
// node; a connection no node holds is an error wrapping
// hub.ErrNoSuchConn.
func (s *suite) testSendTo(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B", "C")
	a, b, c := ns[0], ns[1], ns[2]
	ctx := testutil.Ctx(t)
	b.b.Subscribe("room")
	testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "conn-b", Node: "B"}))

	var err error
	testutil.Eventually(t, func() bool {
		err = a.b.Publish(ctx, hub.Envelope{Origin: "A", Target: "conn-b", Type: wsroute.MessageText, Data: []byte("direct")})
		return err == nil
	}, "SendTo a connection on B: %v", err)
	testutil.Eventually(t, func() bool { return len(b.in.messages("")) >= 1 }, "B never got the direct message")
	got := b.in.messages("")[0]
	testutil.Equal(t, got.Target, "conn-b")
	testutil.Equal(t, got.Origin, "A")
	testutil.Equal(t, string(got.Data), "direct")

	err = a.b.Publish(ctx, hub.Envelope{Origin: "A", Target: "nobody", Type: wsroute.MessageText, Data: []byte("x")})
	testutil.Check(t, errors.Is(err, hub.ErrNoSuchConn), "SendTo a connection no node holds: %v, want hub.ErrNoSuchConn", err)

	// Only B got it: a broadcast published after it reaches C, and C has
	// nothing addressed.
	c.b.Subscribe("room")
	ready(t, a, "room", c)
	testutil.Equal(t, len(c.in.messages("")), 0)
	testutil.Equal(t, len(a.in.all()), 0)

	// Once the member left, it is no longer found.
	testutil.NoErr(t, b.b.RemoveMember(ctx, "room", hub.Member{ConnID: "conn-b", Node: "B"}))
	testutil.Eventually(t, func() bool {
		err = a.b.Publish(ctx, hub.Envelope{Origin: "A", Target: "conn-b", Type: wsroute.MessageText, Data: []byte("x")})
		return errors.Is(err, hub.ErrNoSuchConn)
	}, "SendTo a connection that left: %v", err)
}

// Presence lists every node's members, with their node and meta, and
// forgets those that left.
func (s *suite) testPresence(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B")
	a, b := ns[0], ns[1]
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, a.b.AddMember(ctx, "room", hub.Member{ConnID: "a1", Node: "A", Meta: map[string]string{"user": "ann"}}))
	testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))
	testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "b2", Node: "B"}))
	testutil.NoErr(t, b.b.AddMember(ctx, "elsewhere", hub.Member{ConnID: "b3", Node: "B"}))

	// A node's own members are listed at once.
	ms, err := a.b.Members(ctx, "room")
	testutil.NoErr(t, err)
	testutil.Check(t, memberIDs(ms)["a1"] == "A", "A does not list its own member at once: %v", ms)

	want := "a1@A,b1@B,b2@B"
	for _, n := range ns {
		var got string
		testutil.Eventually(t, func() bool {
			ms, err := n.b.Members(ctx, "room")
			got = members(ms)
			return err == nil && got == want
		}, "%s lists %q, want %q", n.name, got, want)
	}
	ms, err = b.b.Members(ctx, "room")
	testutil.NoErr(t, err)
	for _, m := range ms {
		if m.ConnID == "a1" {
			testutil.Equal(t, m.Meta["user"], "ann")
		}
	}

	testutil.NoErr(t, b.b.RemoveMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))
	testutil.NoErr(t, a.b.RemoveMember(ctx, "room", hub.Member{ConnID: "a1", Node: "A"}))
	for _, n := range ns {
		var got string
		testutil.Eventually(t, func() bool {
			ms, err := n.b.Members(ctx, "room")
			got = members(ms)
			return err == nil && got == "b2@B"
		}, "%s lists %q after the leaves, want b2@B", n.name, got)
	}
}

// Joins and leaves on one node reach the other nodes with members in
// the room as presence events, Origin the node that changed.
func (s *suite) testPresenceEvents(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B")
	a, b := ns[0], ns[1]
	ctx := testutil.Ctx(t)
	a.b.Subscribe("room")
	b.b.Subscribe("room")
	testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))
	ready(t, a, "room", b)
	testutil.NoErr(t, a.b.AddMember(ctx, "room", hub.Member{ConnID: "a1", Node: "A", Meta: map[string]string{"k": "v"}}))
	testutil.Eventually(t, func() bool { return len(b.in.events("room")) >= 1 }, "B saw no join of a1")
	ev := b.in.events("room")[0]
	testutil.Equal(t, ev.Origin, "A")
	testutil.Check(t, ev.Presence.Joined && ev.Presence.Member.ConnID == "a1" && ev.Presence.Member.Node == "A",
		"B's first event: %+v, want a1 joining on A", *ev.Presence)
	testutil.Equal(t, ev.Presence.Member.Meta["k"], "v")

	testutil.NoErr(t, a.b.RemoveMember(ctx, "room", hub.Member{ConnID: "a1", Node: "A"}))
	testutil.Eventually(t, func() bool { return len(b.in.events("room")) >= 2 }, "B saw no leave of a1")
	ev = b.in.events("room")[1]
	testutil.Check(t, !ev.Presence.Joined && ev.Presence.Member.ConnID == "a1" && ev.Origin == "A",
		"B's second event: %+v from %s, want a1 leaving on A", *ev.Presence, ev.Origin)
	// A heard B's member (listed before A joined or after), never its own.
	for _, e := range a.in.events("room") {
		testutil.Check(t, e.Presence.Member.ConnID != "a1", "A got an event of its own member: %+v", *e.Presence)
	}
	testutil.Equal(t, len(b.in.events("room")), 2)
}

// Each publisher's messages arrive in the order it published them, even
// from several goroutines at once, and none comes back to it.
func (s *suite) testOrder(t *testing.T) {
	t.Parallel()
	ns := s.nodes(t, "A", "B")
	a, b := ns[0], ns[1]
	a.b.Subscribe("room")
	b.b.Subscribe("room")
	ready(t, a, "room", b)
	ctx := testutil.Ctx(t)
	const writers, each = 4, 250
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := a.b.Publish(ctx, text("A", "room", fmt.Sprintf("%d:%d", w, i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	testutil.Eventually(t, func() bool { return len(b.in.messages("room")) == writers*each },
		"B got %d of %d messages", len(b.in.messages("room")), writers*each)
	next := make(map[string]int)
	for _, e := range b.in.messages("room") {
		w, i, _ := strings.Cut(string(e.Data), ":")
		testutil.Equal(t, i, strconv.Itoa(next[w]))
		next[w]++
	}
	testutil.Equal(t, len(a.in.messages("room")), 0)
	b.in.checkSerial(t)
}

// The members of a node that stopped without saying so disappear from
// the other nodes' presence within ExpiryBound, and the nodes with
// members in the room hear them leave, a node restarted under the same
// name too.
func (s *suite) testExpiry(t *testing.T) {
	if s.cfg.isolate == nil {
		t.Skip("needs brokertest.WithIsolate to stop a node without telling its broker")
	}
	t.Parallel()
	ns := s.nodes(t, "A", "B")
	a, b := ns[0], ns[1]
	ctx := testutil.Ctx(t)
	b.b.Subscribe("room")
	testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))
	testutil.NoErr(t, a.b.AddMember(ctx, "room", hub.Member{ConnID: "a1", Node: "A"}))
	testutil.NoErr(t, a.b.AddMember(ctx, "room", hub.Member{ConnID: "a2", Node: "A"}))
	var got string
	testutil.Eventually(t, func() bool {
		ms, _ := b.b.Members(ctx, "room")
		got = members(ms)
		return got == "a1@A,a2@A,b1@B"
	}, "B lists %q before the crash", got)

	s.cfg.isolate(t, a.b) // never restored: A crashed
	crashed := time.Now()
	// A comes back at once under the same name, with a new member.
	a2 := open(t, s.newBroker(t), "A")
	a2.b.Subscribe("room")
	testutil.NoErr(t, a2.b.AddMember(ctx, "room", hub.Member{ConnID: "a3", Node: "A"}))
	// Its member lists the room, as the demo's page does on joining:
	// the restarted A now knows its predecessor's members too.
	testutil.Eventually(t, func() bool {
		ms, _ := a2.b.Members(ctx, "room")
		got = members(ms)
		return strings.Contains(got, "a1@A")
	}, "the restarted A lists %q, without its predecessor's members", got)
	testutil.EventuallyWithin(t, ExpiryBound+slack, func() bool {
		ms, _ := b.b.Members(ctx, "room")
		got = members(ms)
		return got == "a3@A,b1@B"
	}, "B lists %q %v after A crashed; members of a dead node must expire within %v", got, ExpiryBound+slack, ExpiryBound)
	t.Logf("A's members expired on B %v after A was cut off", time.Since(crashed).Round(10*time.Millisecond))
	// And no node holds them any longer.
	var err error
	testutil.Eventually(t, func() bool {
		err = b.b.Publish(ctx, hub.Envelope{Origin: "B", Target: "a1", Type: wsroute.MessageText, Data: []byte("x")})
		return errors.Is(err, hub.ErrNoSuchConn)
	}, "SendTo a member of the crashed A: %v, want hub.ErrNoSuchConn", err)
	// Every node with members in the room hears each expired member
	// leave, the restarted A too: there, the Origin of its
	// predecessor's changes is not its own name (the hub would take
	// them for echoes of its own and drop them), but "".
	for _, n := range []*node{b, a2} {
		testutil.Eventually(t, func() bool {
			left := map[string]bool{}
			for _, e := range n.in.events("room") {
				if !e.Presence.Joined && e.Origin != n.name {
					left[e.Presence.Member.ConnID] = true
				}
			}
			return left["a1"] && left["a2"]
		}, "node %s did not deliver a leave, with an Origin other than its own name, for each expired member: %+v",
			n.name, n.in.events("room"))
	}
}

// members renders a presence list as sorted "conn@node" items.
func members(ms []hub.Member) string {
	var items []string
	for _, m := range ms {
		items = append(items, m.ConnID+"@"+m.Node)
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}
