package hub

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nexio-go/nexio/internal/wsinternal"
	"github.com/nexio-go/nexio/wsroute"
)

// member is one connection's presence in the hub: the rooms it is in and
// its outbound queue. It exists from the connection's first Join until
// the connection ends, whatever rooms it is in meanwhile.
//
// The queue is bounded by Options.QueueMessages and QueueBytes. While
// messages are queued the member waits in the hub's line for one of the
// hub's writers (writers.go), which hands everything queued to the socket
// at once with a non-blocking write: one system call for a burst, each
// message still its own frame, in the order enqueued. A member whose
// socket cannot take it at once gets a writer goroutine of its own (run),
// which waits for the socket with Conn.SendBatch, until its queue is
// empty. An idle member therefore costs no goroutine, and keeps at most a
// small buffer (keepQueue slots, 512 bytes).
type member struct {
	c      *wsroute.Conn
	h      *Hub
	meta   map[string]string // what Options.Describe shares, when shown anywhere
	rooms  []string          // guarded by h.mu; usually one
	active bool              // guarded by h.mu: accepted, so shown in presence

	warned atomic.Bool // a drop was logged for this member

	mu       sync.Mutex
	q        *queue
	running  bool       // in the writers' line, or a writer owns the socket side
	held     bool       // not accepted yet: messages wait, no writer runs
	dead     bool       // slow, failed or gone: enqueue drops
	telling  bool       // a goroutine is running the hooks for events (beside the other bools: no padding)
	catchups []*catchup // rooms whose past is being handed over (history.go)
	events   []event    // presence changes not yet told to the hooks
}

// event is a join or leave of an accepted member, for the hooks.
type event struct {
	room   string
	joined bool
}

// queue is a member's pending messages. Queues are pooled: a member keeps
// at most a small one while idle.
type queue struct {
	msgs  []wsroute.Message
	bytes int
}

// keepQueue is the largest queue capacity an idle member keeps.
const keepQueue = 16

var queues = sync.Pool{New: func() any { return &queue{msgs: make([]wsroute.Message, 0, 16)} }}

func putQueue(q *queue) {
	clear(q.msgs) // drop references to payloads
	q.msgs = q.msgs[:0]
	q.bytes = 0
	if cap(q.msgs) <= 1024 {
		queues.Put(q)
	}
}

// full reports whether the queue has no room for a message of n bytes.
// An empty queue always has room.
func (h *Hub) full(q *queue, n int) bool {
	l := len(q.msgs)
	return l > 0 && (l >= h.opts.QueueMessages || q.bytes+n > h.opts.QueueBytes)
}

// enqueue queues msg for the member, applying the slow-consumer policy
// when the queue is full. It never blocks on the network. room is the
// room msg is broadcast to ("" for SendTo) and pos its position (zero
// without history): a room whose past is being handed over to the member
// holds its live messages behind the replay.
func (m *member) enqueue(room string, pos Position, msg wsroute.Message) {
	h := m.h
	m.mu.Lock()
	if m.dead {
		m.mu.Unlock()
		return
	}
	if m.catchups != nil {
		// A room being caught up holds its live messages behind its
		// replay; a message sent to the member alone (room "") waits
		// behind every catch-up, so that what SendTo hands a member
		// after JoinFrom follows that JoinFrom's replay and seam.
		cu := m.catchupFor(room)
		if room == "" {
			cu = m.directCatchup()
		}
		if cu != nil {
			m.hold(cu, pos, msg)
			m.mu.Unlock()
			return
		}
	}
	if m.q == nil {
		m.q = queues.Get().(*queue)
	}
	q := m.q
	if h.full(q, len(msg.Data)) {
		switch h.opts.SlowConsumer {
		case DropNewest:
			m.mu.Unlock()
			h.dropped(m)
			return
		case DropOldest:
			for h.full(q, len(msg.Data)) {
				q.bytes -= len(q.msgs[0].Data)
				copy(q.msgs, q.msgs[1:])
				q.msgs[len(q.msgs)-1] = wsroute.Message{}
				q.msgs = q.msgs[:len(q.msgs)-1]
				h.dropped(m)
			}
		default: // Disconnect
			m.dieLocked()
			m.mu.Unlock()
			h.slowConsumer(m)
			return
		}
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg.Data)
	if f := h.opts.OnEnqueue; f != nil {
		f(len(q.msgs))
	}
	m.startLocked()
	m.mu.Unlock()
}

// startLocked hands the member to the hub's writers if there is
// something to write and nothing stops it; m.mu must be held.
func (m *member) startLocked() {
	if m.running || m.held || m.dead {
		return
	}
	if (m.q == nil || len(m.q.msgs) == 0) && !m.ready() {
		return
	}
	m.running = true
	m.h.schedule(m)
}

// dieLocked marks the member dead and drops what it holds; m.mu must be
// held.
func (m *member) dieLocked() {
	m.dead = true
	m.catchups = nil
	if !m.running && m.q != nil {
		putQueue(m.q)
	}
	if !m.running {
		m.q = nil
	}
}

// take takes the member's queue for writing, first moving what a
// catch-up holds into it; m.q gets spare (possibly nil) in its place.
// With nothing to write, or the member dead, it ends the member's turn
// (running is cleared, buffers go back) and returns nil.
func (m *member) take(spare *queue) *queue {
	m.mu.Lock()
	if !m.dead && m.ready() {
		if m.q == nil {
			m.q = queues.Get().(*queue)
		}
		m.refill()
	}
	q := m.q
	if m.dead || q == nil || len(q.msgs) == 0 {
		m.running = false
		if q != nil && (m.dead || cap(q.msgs) > keepQueue) {
			// Dead, or grown by a burst: give the buffer back.
			// A small one stays (at most keepQueue*32 bytes) to
			// spare the next message a pool round trip.
			m.q = nil
			putQueue(q)
		}
		m.mu.Unlock()
		if spare != nil { // the writer's own: never m.q
			putQueue(spare)
		}
		return nil
	}
	m.q = spare
	m.mu.Unlock()
	return q
}

// sent records the outcome of writing q and empties q for reuse.
func (m *member) sent(q *queue, err error) {
	h := m.h
	if err != nil {
		m.mu.Lock()
		m.dieLocked()
		m.mu.Unlock()
		h.writeFailed(m, err)
	} else {
		h.stats.messagesOut.Add(uint64(len(q.msgs)))
		h.stats.bytesOut.Add(uint64(q.bytes))
	}
	clear(q.msgs)
	q.msgs = q.msgs[:0]
	q.bytes = 0
}

// drain is one turn of the member on a hub writer (see Hub.schedule):
// it writes the member's queue if the socket takes it at once, and goes
// to the back of the line if more is queued meanwhile. When the socket
// would make it wait, the member gets a goroutine of its own (run) that
// waits, so a slow member never holds up the others. Either way it is the
// only writer of the member while it runs.
func (m *member) drain() {
	h := m.h
	q := m.take(nil)
	if q == nil {
		return
	}
	if !wsinternal.TrySendBatch(m.c, &q.msgs) {
		h.writers.Add(1)
		go m.run(q)
		return
	}
	m.sent(q, nil)
	m.mu.Lock()
	if m.q == nil && !m.dead {
		m.q = q // the buffer stays with the member, as in take
		q = nil
	}
	more := !m.dead && (m.q != nil && len(m.q.msgs) > 0 || m.ready())
	if !more {
		m.running = false
		if m.q != nil && (m.dead || cap(m.q.msgs) > keepQueue) {
			putQueue(m.q)
			m.q = nil
		}
	}
	m.mu.Unlock()
	if q != nil {
		putQueue(q)
	}
	if more {
		h.schedule(m) // still running: nobody else schedules it
	}
}

// run is the member's own writer, for a member whose socket could not
// take a batch at once: it sends first (a batch taken by drain, waiting
// for the socket as long as the write deadline allows), then whatever
// is queued, and ends when the queue is empty or the member is dead. It
// is the only writer of the member while it runs.
func (m *member) run(first *queue) {
	defer m.h.writers.Done()
	q := first
	var spare *queue
	for {
		// No per-message context: the socket's write deadline
		// (wsroute.Options.WriteTimeout) bounds a stalled peer.
		m.sent(q, m.c.SendBatch(context.Background(), q.msgs))
		spare = q
		if q = m.take(spare); q == nil {
			return
		}
	}
}

// kill marks the member dead and drops its queue.
func (m *member) kill() {
	m.mu.Lock()
	m.dieLocked()
	m.mu.Unlock()
}

// release lets the messages of a member that joined before its
// handshake go, now that it is accepted.
func (m *member) release() {
	m.mu.Lock()
	m.held = false
	m.startLocked()
	m.mu.Unlock()
}

// isActive reports whether the member is shown (accepted).
func (m *member) isActive() bool {
	m.h.mu.RLock()
	defer m.h.mu.RUnlock()
	return m.active
}

// presence describes the member for presence lists and events.
func (m *member) presence() Member {
	return Member{ConnID: m.c.ID(), Node: m.h.opts.Node, Meta: m.meta}
}

// runEvents tells the hooks about the member's presence changes, in the
// order they happened, outside the hub's lock. Changes of one member
// made on several goroutines are told by whichever gets here first, all
// of them in order; a hook that changes the member's rooms again adds to
// the list being told, so it cannot deadlock.
func (m *member) runEvents() {
	h := m.h
	m.mu.Lock()
	if m.telling || len(m.events) == 0 {
		m.mu.Unlock()
		return
	}
	m.telling = true
	for len(m.events) > 0 {
		e := m.events[0]
		m.events = slices.Delete(m.events, 0, 1)
		m.mu.Unlock()
		if e.joined && h.opts.OnJoin != nil {
			h.opts.OnJoin(e.room, m.c)
		}
		if !e.joined && h.opts.OnLeave != nil {
			h.opts.OnLeave(e.room, m.c)
		}
		if f := h.opts.OnPresence; f != nil {
			f(e.room, PresenceEvent{Joined: e.joined, Member: m.presence()})
		}
		m.mu.Lock()
	}
	m.events = nil
	m.telling = false
	m.mu.Unlock()
}
