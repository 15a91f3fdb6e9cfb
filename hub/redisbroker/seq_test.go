package redisbroker

import (
	"testing"
	"time"
)

func TestPubSeqsNumberPerChannel(t *testing.T) {
	t.Parallel()
	var p pubSeqs
	now := time.Unix(1000, 0)
	a1, a2 := p.next("a", now), p.next("a", now)
	b1 := p.next("b", now)
	if a1.n != 1 || a2.n != 2 || b1.n != 1 {
		t.Fatalf("numbers %d %d on a, %d on b; want 1 2, 1", a1.n, a2.n, b1.n)
	}
	if a1.stream != a2.stream || a1.stream == b1.stream {
		t.Fatalf("streams %x %x %x: want one per channel", a1.stream, a2.stream, b1.stream)
	}
	// Kept while in use...
	now = now.Add(streamIdle - time.Second)
	if a3 := p.next("a", now); a3 != (seqNo{a1.stream, 3}) {
		t.Fatalf("after a pause shorter than streamIdle: %+v", a3)
	}
	// ...forgotten when idle: b starts a new stream.
	now = now.Add(streamIdle)
	p.next("a", now) // sweeps
	if _, ok := p.ch["b"]; ok {
		t.Fatalf("channel b idle for %v is still numbered", 2*streamIdle)
	}
	b2 := p.next("b", now)
	if b2.n != 1 || b2.stream == b1.stream {
		t.Fatalf("b after a long pause: %+v, want number 1 in a new stream (old %x)", b2, b1.stream)
	}
}

func TestRecvSeqs(t *testing.T) {
	t.Parallel()
	var r recvSeqs
	now := time.Unix(1000, 0)
	type want struct {
		dup    bool
		missed uint64
	}
	steps := []struct {
		name string
		ch   string
		sq   seqNo
		want want
	}{
		{"first heard: the baseline", "c", seqNo{1, 57}, want{}},
		{"next", "c", seqNo{1, 58}, want{}},
		{"sent again", "c", seqNo{1, 58}, want{dup: true}},
		{"an older one again", "c", seqNo{1, 57}, want{dup: true}},
		{"three lost", "c", seqNo{1, 62}, want{missed: 3}},
		{"another stream on the channel", "c", seqNo{2, 9}, want{}},
		{"the first one goes on", "c", seqNo{1, 63}, want{}},
		{"same stream on another channel: apart", "d", seqNo{1, 1}, want{}},
		{"unnumbered (version 1)", "c", seqNo{}, want{}},
		{"unnumbered, again", "c", seqNo{}, want{}},
	}
	for _, s := range steps {
		dup, missed := r.check(s.ch, s.sq, now)
		if (want{dup, missed}) != s.want {
			t.Fatalf("%s: dup %v, missed %d; want %+v", s.name, dup, missed, s.want)
		}
	}
	// Subscribed anew: the next message is a baseline, not a gap.
	r.reset("c")
	if dup, missed := r.check("c", seqNo{1, 100}, now); dup || missed != 0 {
		t.Fatalf("after reset: dup %v, missed %d", dup, missed)
	}
	// Sweeps forget idle streams and unwanted channels.
	r.check("c", seqNo{3, 1}, now.Add(streamIdle/2))
	now = now.Add(streamIdle)
	if !r.due(now) {
		t.Fatal("no sweep due after streamIdle")
	}
	r.sweep(now, func(ch string) bool { return ch != "d" })
	if _, ok := r.ch["d"]; ok {
		t.Fatal("channel d, no longer wanted, was kept")
	}
	if _, ok := r.ch["c"][1]; ok {
		t.Fatal("stream 1, idle for streamIdle, was kept")
	}
	if _, ok := r.ch["c"][3]; !ok {
		t.Fatal("stream 3, used within streamIdle, was forgotten")
	}
}

// FuzzSeqs plays a publisher and the network against the receiver's
// checks: every op byte publishes the next message and either delivers
// it, loses it, or makes go-redis send the last few again, or restarts
// the publisher. The receiver must hand over each message at most once,
// in order, drop exactly the copies it cannot hand over in order, and
// count exactly the messages it skipped.
func FuzzSeqs(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 0, 2, 0})
	f.Add([]byte{1, 1, 1, 0, 3, 1, 0, 2, 2, 0})
	f.Add([]byte{2, 0, 0, 0, 0x42, 0x82, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var (
			r       recvSeqs
			now     = time.Unix(0, 0)
			stream  = uint64(1)
			n       uint64 // the publisher's last number
			sent    []uint64
			handed  = map[seqNo]bool{}
			last    uint64 // the highest handed over, this stream
			first   uint64 // the first handed over, this stream
			count   uint64 // handed over, this stream
			missed  uint64 // counted by the receiver, this stream
			wantDup int
			dups    int
		)
		deliver := func(sq seqNo) {
			dup, m := r.check("ch", sq, now)
			if dup {
				// Seen already, or older than one seen: handing it
				// over now would break the order.
				dups++
				if sq.n > last {
					t.Fatalf("%+v dropped as a duplicate, after %d", sq, last)
				}
				return
			}
			if handed[sq] {
				t.Fatalf("%+v handed over twice", sq)
			}
			if sq.n <= last {
				t.Fatalf("%+v handed over after %d", sq, last)
			}
			handed[sq] = true
			if first == 0 {
				first = sq.n
			}
			last = sq.n
			count++
			missed += m
		}
		for _, op := range ops {
			now = now.Add(time.Millisecond)
			switch op % 4 {
			case 0: // published and delivered
				n++
				sent = append(sent, n)
				deliver(seqNo{stream, n})
			case 1: // published, lost
				n++
				sent = append(sent, n)
			case 2: // a pipeline sent again: its last k messages
				k := min(int(op/4)%8+1, len(sent))
				for _, m := range sent[len(sent)-k:] {
					if m <= last {
						wantDup++
					}
					deliver(seqNo{stream, m})
				}
			case 3: // the publisher restarted
				if count > 0 && missed != last-first+1-count {
					t.Fatalf("stream %d: counted %d missed, %d of %d..%d handed over", stream, missed, count, first, last)
				}
				stream++
				n, sent, last, first, count, missed = 0, nil, 0, 0, 0, 0
			}
		}
		if count > 0 && missed != last-first+1-count {
			t.Fatalf("counted %d missed, %d of %d..%d handed over", missed, count, first, last)
		}
		if dups != wantDup {
			t.Fatalf("%d dropped as duplicates, %d were", dups, wantDup)
		}
	})
}
