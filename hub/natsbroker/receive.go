package natsbroker

import (
	"strings"

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
			b.catchUp(rooms)
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
			b.fill(st, e.Room, e.Position.Offset-1)
		}
	} else if st.pos.Epoch != "" && e.Position.Offset > 1 {
		// A new epoch began while this node was subscribed: what it
		// holds before this message is missing too.
		st.pos = hub.Position{Epoch: e.Position.Epoch}
		b.fill(st, e.Room, e.Position.Offset-1)
	}
	st.pos, st.seq = e.Position, w.seq
	b.stats.received.Add(1)
	b.deliver(e)
}

// fill delivers the kept messages of room after st.pos up to offset
// upTo, and moves st.pos along. What the store no longer has (or cannot
// give now) is counted in Stats.Missed.
func (b *Broker) fill(st *roomState, room string, upTo uint64) {
	want := upTo - st.pos.Offset
	entries, err := b.fetch(b.ctx, room, st.pos, int(want))
	if err != nil {
		b.log.Warn("natsbroker: could not fetch missed messages from JetStream", "room", room, "error", err)
	}
	got := uint64(0)
	for _, w := range entries {
		e := w.env
		if e.Position.Epoch != st.pos.Epoch || e.Position.Offset <= st.pos.Offset || e.Position.Offset > upTo {
			continue
		}
		st.pos, st.seq = e.Position, w.seq
		got++
		b.stats.filled.Add(1)
		b.deliver(e)
	}
	if got < want {
		b.stats.missed.Add(want - got)
	}
}

// catchUp runs after a reconnect: for every room with history this node
// follows, it delivers what was appended while the node was not
// listening, so that a room without later messages does not keep its
// gap.
func (b *Broker) catchUp(rooms map[string]*roomState) {
	for room, st := range rooms {
		if gen := b.subscribed(room); gen == 0 || gen != st.gen {
			delete(rooms, room)
			continue
		}
		last, _, err := b.lastOf(b.ctx, room)
		if err != nil || last.Offset == 0 {
			continue
		}
		if last.Epoch == st.pos.Epoch && last.Offset > st.pos.Offset {
			b.fill(st, room, last.Offset)
		} else if last.Epoch != st.pos.Epoch {
			st.pos = hub.Position{Epoch: last.Epoch}
			b.fill(st, room, last.Offset)
		}
	}
}

func (b *Broker) malformed(err error) {
	if b.stats.malformed.Add(1) == 1 {
		b.log.Warn("natsbroker: dropped a message that does not decode (another publisher on the broker's subjects?)", "node", b.node, "error", err)
	}
}
