package hub

import (
	"slices"

	"github.com/nexio-go/nexio/wsroute"
)

// catchup is a room whose past is being handed over to a member
// (JoinFrom): the replayed messages, then the room's live messages that
// arrived meanwhile, in order. The member's writer moves them into the
// member's queue as the queue drains, so a replay larger than the queue
// reaches a healthy client whole, through the same queue and the same
// slow-consumer policy as live messages.
type catchup struct {
	room string

	// fetching is true while the room's history is being read from the
	// broker: live messages wait here, with their positions, until the
	// replay is put in front of them.
	fetching bool

	msgs   []wsroute.Message
	pos    []Position // positions of msgs, kept while fetching
	replay int        // msgs at the front that are replayed, not live

	// live messages held behind the replay, bounded like a queue (see
	// hold).
	live, liveBytes int

	// after drops the room's messages up to this position: with a
	// broker, deliveries that were in flight when the history was read
	// repeat what the replay already holds.
	after Position
}

// catchupFor returns the member's catch-up of room, or nil; m.mu must be
// held. The catch-ups of messages sent to the member alone (room "") are
// never returned.
func (m *member) catchupFor(room string) *catchup {
	if room == "" {
		return nil
	}
	for _, cu := range m.catchups {
		if cu.room == room {
			return cu
		}
	}
	return nil
}

// directCatchup returns the catch-up that holds messages sent to the
// member alone behind the catch-ups before it, adding one at the end
// unless the last one is already such; m.mu must be held and
// m.catchups non-nil.
func (m *member) directCatchup() *catchup {
	if last := m.catchups[len(m.catchups)-1]; last.room == "" {
		return last
	}
	cu := &catchup{}
	m.catchups = append(m.catchups, cu)
	return cu
}

// movable reports whether the catch-up at index i may move messages into
// the queue now; m.mu must be held. A room's waits only for its own
// history read; a direct one (room "") waits until every catch-up before
// it has handed over everything.
func (m *member) movable(i int) bool {
	cu := m.catchups[i]
	if cu.fetching {
		return false
	}
	if cu.room != "" {
		return true
	}
	for _, before := range m.catchups[:i] {
		if before.fetching || len(before.msgs) > 0 {
			return false
		}
	}
	return true
}

// ready reports whether a catch-up has messages to move into the queue;
// m.mu must be held.
func (m *member) ready() bool {
	for i, cu := range m.catchups {
		if len(cu.msgs) > 0 && m.movable(i) {
			return true
		}
	}
	return false
}

// hold appends a live message of a room being caught up; m.mu must be
// held. Live messages held behind a replay may number QueueMessages plus
// History.Size, and weigh QueueBytes plus the replay's bytes: a member
// that falls further behind meets Options.SlowConsumer, as with its
// queue.
func (m *member) hold(cu *catchup, pos Position, msg wsroute.Message) {
	h := m.h
	if !cu.after.IsZero() {
		if pos.Epoch == cu.after.Epoch && pos.Offset <= cu.after.Offset {
			return // replayed already
		}
		cu.after = Position{}
	}
	if cu.live > 0 && (cu.live >= h.opts.QueueMessages+h.opts.History.Size || cu.liveBytes+len(msg.Data) > 2*h.opts.QueueBytes) {
		switch h.opts.SlowConsumer {
		case DropNewest:
			h.dropped(m)
			return
		case DropOldest:
			cu.dropFirst()
			h.dropped(m)
		default:
			m.dieLocked()
			h.slowConsumer(m)
			return
		}
	}
	cu.msgs = append(cu.msgs, msg)
	if cu.fetching {
		cu.pos = append(cu.pos, pos)
	}
	cu.live++
	cu.liveBytes += len(msg.Data)
	m.startLocked()
}

// dropFirst removes the oldest message held.
func (cu *catchup) dropFirst() {
	if cu.replay > 0 {
		cu.replay--
	} else {
		cu.live--
		cu.liveBytes -= len(cu.msgs[0].Data)
	}
	cu.msgs[0] = wsroute.Message{}
	cu.msgs = cu.msgs[1:]
	if cu.pos != nil {
		cu.pos = cu.pos[1:]
	}
}

// refill moves held messages into the member's queue while it has room;
// m.mu must be held and m.q set. A catch-up ends when it has handed
// over everything and no longer needs to drop repeated deliveries.
func (m *member) refill() {
	h := m.h
	q := m.q
	for i, cu := range m.catchups {
		if !m.movable(i) {
			continue
		}
		for len(cu.msgs) > 0 && !h.full(q, len(cu.msgs[0].Data)) {
			msg := cu.msgs[0]
			q.msgs = append(q.msgs, msg)
			q.bytes += len(msg.Data)
			cu.dropFirst()
			if f := h.opts.OnEnqueue; f != nil {
				f(len(q.msgs))
			}
		}
		if h.full(q, 0) {
			break
		}
	}
	m.catchups = slices.DeleteFunc(m.catchups, func(cu *catchup) bool {
		return !cu.fetching && len(cu.msgs) == 0 && cu.after.IsZero()
	})
	if len(m.catchups) == 0 {
		m.catchups = nil
	}
}

// dropCatchup forgets the catch-up of a room the member leaves; what
// was sent to the member alone behind it may then move.
func (m *member) dropCatchup(room string) {
	m.mu.Lock()
	if m.catchups != nil {
		m.catchups = slices.DeleteFunc(m.catchups, func(cu *catchup) bool { return cu.room == room })
		if len(m.catchups) == 0 {
			m.catchups = nil
		}
		m.startLocked()
	}
	m.mu.Unlock()
}
