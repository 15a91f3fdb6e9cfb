package wsroute

import "testing"

// TestPollEventOfAnEndedRegistration: an event names its registration by
// slot and generation, so one read just before its registration ended
// (or for a descriptor since closed and reused) finds nothing, also
// once the slot holds another connection's registration.
func TestPollEventOfAnEndedRegistration(t *testing.T) {
	end := func(r *pollReg) {
		r.mu.Lock()
		r.end()
		r.mu.Unlock()
	}
	a, err := newPollReg(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pollLookup(a.slot, a.gen) != a {
		t.Fatal("a live registration is not found by its event")
	}
	end(a)
	if r := pollLookup(a.slot, a.gen); r != nil {
		t.Fatal("an ended registration is found by its event")
	}
	// Take slots until a's is reused (others' connections may free
	// slots meanwhile).
	var regs []*pollReg
	var b *pollReg
	for range 1000 {
		r, err := newPollReg(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
		if r.slot == a.slot {
			b = r
			break
		}
	}
	if b == nil {
		t.Fatal("a's slot was never reused")
	}
	if got := pollLookup(a.slot, a.gen); got != nil {
		t.Fatalf("an event of the ended registration finds its successor in slot %d", a.slot)
	}
	if pollLookup(b.slot, b.gen) != b {
		t.Fatal("the successor is not found by its own event")
	}
	for _, r := range regs {
		end(r)
	}
}
