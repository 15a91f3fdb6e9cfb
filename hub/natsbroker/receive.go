package natsbroker

import (
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub"
)

// roomState is what the receiver remembers of a room with history: the
// position it delivered last, in the subscription generation it did.
type roomState struct {
	gen uint64
	pos hub.Position
	seq uint64 // the stream sequence of pos
}

// runReceiver hands messages and presence events to the Hub, one at a
// time. It owns the per-room positions, so a room's messages are
// delivered in Position order with no gap and no duplicate: a message
// whose offset jumps is preceded by the missing ones, read from the
// history stream.
func (b *Broker) runReceiver() {
	defer b.wg.Done()
	rooms := make(map[string]*roomState)
	// retry is set while a catch-up could not read every room's last
	// message (JetStream still recovering): it is tried again then.
	var retry <-chan time.Time
	catchUp := func() {
		retry = nil
		if !b.catchUp(rooms) {
			retry = time.After(b.opts.Timeout)
		}
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case m := <-b.msgs:
			b.receive(rooms, m)
		case e := <-b.events:
			if e.Room != "" && b.subscribed(e.Room) != 0 {
				b.deliver(e)
			}
		case <-b.reconn:
			catchUp()
		case <-retry:
			catchUp()
		}
	}
}

func (b *Broker) receive(rooms map[string]*roomState, m *nats.Msg) {
	w, err := decodeEnvelope(m.Data)
	if err != nil {
		b.malformed(err)
		return
	}
	e := w.env
	if e.Target != "" {
		if strings.HasPrefix(m.Subject, b.nodeSubj) && e.Origin != b.node {
			b.stats.received.Add(1)
			b.deliver(e)
		}
		return
	}
	if !strings.HasPrefix(m.Subject, b.roomSubj) || m.Subject[len(b.roomSubj):] != token(e.Room) {
		b.malformed(nil)
		return
	}
	gen := b.subscribed(e.Room)
	if gen == 0 {
		delete(rooms, e.Room)
		return
	}
	if e.Position.IsZero() {
		// A plain broadcast: never back to its publisher.
		if e.Origin != b.node {
			b.stats.received.Add(1)
			b.deliver(e)
		}
		return
	}
	// A message of a room with history, this node's own included.
	st := rooms[e.Room]
	if st == nil || st.gen != gen {
		// First message since the room was subscribed: it starts here.
		st = &roomState{gen: gen}
		rooms[e.Room] = st
	} else if st.pos.Epoch == e.Position.Epoch {
		if e.Position.Offset <= st.pos.Offset {
			b.stats.duplicates.Add(1)
			return
		}
		if e.Position.Offset > st.pos.Offset+1 {
			b.fill(st, e.Room, e.Position.Offset-1, st.seq+1, before(w.seq))
		}
	} else if st.pos.Epoch != "" && e.Position.Offset > 1 {
		// A new epoch began while this node was subscribed: what it
		// holds before this message is missing too.
		st.pos = hub.Position{Epoch: e.Position.Epoch}
		b.fill(st, e.Room, e.Position.Offset-1, 1, before(w.seq))
	}
	st.pos, st.seq = e.Position, w.seq
	b.stats.received.Add(1)
	b.deliver(e)
}

// fill delivers the kept messages of room after st.pos up to offset
// upTo, found at stream sequences from fromSeq to toSeq, and moves
// st.pos along. What the store no longer has (or cannot give now) is
// counted in Stats.Missed.
func (b *Broker) fill(st *roomState, room string, upTo, fromSeq, toSeq uint64) {
	want := upTo - st.pos.Offset
	got := uint64(0)
	err := b.readRange(b.ctx, 2*b.opts.Timeout, room, fromSeq, toSeq, func(w wireMsg) bool {
		e := w.env
		if e.Position.Epoch != st.pos.Epoch || e.Position.Offset <= st.pos.Offset {
			return true
		}
		if e.Position.Offset > upTo {
			return false
		}
		st.pos, st.seq = e.Position, w.seq
		got++
		b.stats.filled.Add(1)
		b.deliver(e)
		return got < want
	})
	if err != nil {
		b.log.Warn("natsbroker: could not read missed messages from JetStream", "room", room, "error", err)
	}
	if got < want {
		b.stats.missed.Add(want - got)
	}
}

// catchUp runs after a reconnect: for every room with history this node
// follows, it delivers what was appended while the node was not
// listening, so that a room without later messages does not keep its
// gap. It reports whether it could read every room's last message; it
// stops at the first it cannot (JetStream not answering yet), so that
// the receiver waits Options.Timeout once, not once per room.
func (b *Broker) catchUp(rooms map[string]*roomState) bool {
	for room, st := range rooms {
		if gen := b.subscribed(room); gen == 0 || gen != st.gen {
			delete(rooms, room)
			continue
		}
		last, seq, err := b.lastOf(b.ctx, room)
		if err != nil {
			return false
		}
		if seq == 0 {
			continue
		}
		if last.Epoch == st.pos.Epoch && last.Offset > st.pos.Offset {
			b.fill(st, room, last.Offset, st.seq+1, seq)
		} else if last.Epoch != st.pos.Epoch {
			st.pos = hub.Position{Epoch: last.Epoch}
			b.fill(st, room, last.Offset, 1, seq)
		}
	}
	return true
}

// before returns the stream sequence before seq, or the largest one
// when seq is unknown (0: a message from an older version).
func before(seq uint64) uint64 {
	if seq == 0 {
		return math.MaxUint64
	}
	return seq - 1
}

func (b *Broker) malformed(err error) {
	if b.stats.malformed.Add(1) == 1 {
		b.log.Warn("natsbroker: dropped a message that does not decode (another publisher on the broker's subjects?)", "node", b.node, "error", err)
	}
}
