package brokertest

import (
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// PublishBound is how long Publish and Append may take while the
// backend is down (hub.Broker's contract says "bounded"; Run checks
// this bound, plus slack for a loaded machine).
const PublishBound = 5 * time.Second

// The backend stops and starts: Publish fails within PublishBound while
// it is down, then the brokers reconnect and resubscribe by themselves;
// history continues in the same epoch if the backend kept its data, and
// starts a new one if it lost it.
func (s *suite) testBackend(t *testing.T) {
	be := s.cfg.backend
	if be == nil {
		t.Skip("needs brokertest.WithBackend to stop and start the backend")
	}
	open2 := func(t *testing.T) (*node, *node) {
		a, b := open(t, be.New(t), "A"), open(t, be.New(t), "B")
		a.b.Subscribe("room")
		b.b.Subscribe("room")
		ctx := testutil.Ctx(t)
		testutil.NoErr(t, b.b.AddMember(ctx, "room", hub.Member{ConnID: "b1", Node: "B"}))
		ready(t, a, "room", b)
		ready(t, b, "room", a)
		return a, b
	}
	hc := hub.History{Size: 100, TTL: time.Hour}

	t.Run("Restart", func(t *testing.T) {
		a, b := open2(t)
		ctx := testutil.Ctx(t)
		_, isHist := a.b.(hub.HistoryBroker)
		var before hub.Position
		if isHist {
			var err error
			before, err = hb(a).Append(ctx, text("A", "room", "before"), hc)
			testutil.NoErr(t, err)
		}

		be.Stop(t)
		stopped := true
		defer func() {
			if stopped {
				be.Start(t)
			}
		}()
		// Publish fails, and fast: the members on the other nodes do
		// not get the message, and the caller knows it.
		var slowest time.Duration
		failed := 0
		for i := range 5 {
			start := time.Now()
			err := a.b.Publish(ctx, text("A", "room", "while down"))
			took := time.Since(start)
			slowest = max(slowest, took)
			if err != nil {
				failed++
			}
			testutil.Check(t, took < PublishBound+slack, "Publish %d took %v with the backend down: %v", i, took, err)
		}
		testutil.Check(t, failed > 0, "no Publish failed with the backend down")
		if isHist {
			start := time.Now()
			_, err := hb(a).Append(ctx, text("A", "room", "while down"), hc)
			testutil.Check(t, err != nil, "Append succeeded with the backend down")
			testutil.Check(t, time.Since(start) < PublishBound+slack, "Append took %v with the backend down", time.Since(start))
		}
		t.Logf("with the backend down, %d of 5 Publish calls failed; the slowest took %v", failed, slowest)

		be.Start(t)
		stopped = false
		// Both reconnect and resubscribe by themselves: a message
		// published now reaches the other node.
		testutil.Eventually(t, func() bool {
			a.b.Publish(ctx, text("A", "room", "back"))
			for _, e := range b.in.messages("room") {
				if string(e.Data) == "back" {
					return true
				}
			}
			return false
		}, "B never heard A after the restart")
		testutil.Eventually(t, func() bool {
			b.b.Publish(ctx, text("B", "room", "back"))
			for _, e := range a.in.messages("room") {
				if string(e.Data) == "back" {
					return true
				}
			}
			return false
		}, "A never heard B after the restart")
		// Presence is back, and so is SendTo.
		var ms []hub.Member
		testutil.Eventually(t, func() bool {
			ms, _ = a.b.Members(ctx, "room")
			return memberIDs(ms)["b1"] == "B"
		}, "A does not list b1 after the restart: %v", ms)
		var err error
		testutil.Eventually(t, func() bool {
			err = a.b.Publish(ctx, hub.Envelope{Origin: "A", Target: "b1", Type: wsroute.MessageText, Data: []byte("direct")})
			return err == nil
		}, "SendTo after the restart: %v", err)
		if isHist {
			var after hub.Position
			testutil.Eventually(t, func() bool {
				after, err = hb(a).Append(ctx, text("A", "room", "after"), hc)
				return err == nil
			}, "Append after the restart: %v", err)
			testutil.Check(t, after == hub.Position{Epoch: before.Epoch, Offset: before.Offset + 1} ||
				(after.Epoch != before.Epoch && after.Offset == 1),
				"after the restart Append returned %+v, before it %+v: want the next offset, or offset 1 of a new epoch", after, before)
			t.Logf("history across the restart: %+v, then %+v", before, after)
		}
	})

	t.Run("DataLoss", func(t *testing.T) {
		if be.Wipe == nil {
			t.Skip("needs Backend.Wipe to lose the backend's data")
		}
		a, b := open2(t)
		if _, ok := a.b.(hub.HistoryBroker); !ok {
			t.Skipf("%T keeps no history", a.b)
		}
		ctx := testutil.Ctx(t)
		var before hub.Position
		for range 3 {
			var err error
			before, err = hb(a).Append(ctx, text("A", "room", "old"), hc)
			testutil.NoErr(t, err)
		}
		checkSequence(t, b, "room", before.Offset-2, before.Offset)
		be.Stop(t)
		be.Wipe(t)
		be.Start(t)
		var after hub.Position
		var err error
		testutil.Eventually(t, func() bool {
			after, err = hb(a).Append(ctx, text("A", "room", "new"), hc)
			return err == nil
		}, "Append after the restart: %v", err)
		testutil.Check(t, after.Epoch != before.Epoch && after.Offset == 1,
			"after the store lost its data, Append returned %+v (before: %+v); want offset 1 of a new epoch", after, before)
		testutil.Eventually(t, func() bool {
			got := b.in.messages("room")
			return len(got) > 0 && got[len(got)-1].Position == after
		}, "B did not deliver the first message of the new epoch")
		entries, cur, err := hb(b).History(ctx, "room", before, 0)
		testutil.NoErr(t, err)
		testutil.Equal(t, cur, after)
		testutil.Check(t, len(entries) == 1 && entries[0].Position == after,
			"History since the lost position: %+v, want the new epoch's message (not following since)", entries)
	})
}
