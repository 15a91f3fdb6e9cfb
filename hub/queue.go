package hub

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nexio-go/nexio/wsroute"
)

// member is one connection's presence in the hub: the rooms it is in and
// its outbound queue.
//
// The queue is bounded by Options.QueueMessages and QueueBytes. Its
// writer goroutine (run) exists only while messages are queued: the first
// enqueue into an empty, idle queue starts it, and it ends when it finds
// the queue empty. An idle member therefore costs no goroutine, and keeps
// at most a small buffer (keepQueue slots, 512 bytes). The writer hands everything queued to the socket at once
// with Conn.SendBatch: one system call for a burst, each message still
// its own frame, in the order enqueued.
type member struct {
	c     *wsroute.Conn
	h     *Hub
	rooms []string // guarded by h.mu; usually one

	warned atomic.Bool // a drop was logged for this member

	mu      sync.Mutex
	q       *queue
	running bool // a writer goroutine owns the socket side
	dead    bool // slow, failed or gone: enqueue drops
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

// enqueue queues msg for the member, applying the slow-consumer policy
// when the queue is full. It never blocks on the network.
func (m *member) enqueue(msg wsroute.Message) {
	h := m.h
	m.mu.Lock()
	if m.dead {
		m.mu.Unlock()
		return
	}
	if m.q == nil {
		m.q = queues.Get().(*queue)
	}
	q := m.q
	if n := len(q.msgs); n > 0 && (n >= h.opts.QueueMessages || q.bytes+len(msg.Data) > h.opts.QueueBytes) {
		switch h.opts.SlowConsumer {
		case DropNewest:
			m.mu.Unlock()
			h.dropped(m)
			return
		case DropOldest:
			for len(q.msgs) > 0 && (len(q.msgs) >= h.opts.QueueMessages || q.bytes+len(msg.Data) > h.opts.QueueBytes) {
				q.bytes -= len(q.msgs[0].Data)
				copy(q.msgs, q.msgs[1:])
				q.msgs[len(q.msgs)-1] = wsroute.Message{}
				q.msgs = q.msgs[:len(q.msgs)-1]
				h.dropped(m)
			}
		default: // Disconnect
			m.dead = true
			m.q = nil
			m.mu.Unlock()
			putQueue(q)
			h.slowConsumer(m)
			return
		}
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg.Data)
	if f := h.opts.OnEnqueue; f != nil {
		f(len(q.msgs))
	}
	if !m.running {
		m.running = true
		h.writers.Add(1)
		go m.run()
	}
	m.mu.Unlock()
}

// run is the member's writer. It owns the queue it takes; it ends when
// the queue is empty or the member is dead, and it is the only writer of
// the member at any time.
func (m *member) run() {
	h := m.h
	defer h.writers.Done()
	var spare *queue
	for {
		m.mu.Lock()
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
			return
		}
		m.q = spare
		m.mu.Unlock()

		// No per-message context: the socket's write deadline
		// (wsroute.Options.WriteTimeout) bounds a stalled peer.
		err := m.c.SendBatch(context.Background(), q.msgs)
		if err != nil {
			m.mu.Lock()
			m.dead = true
			m.mu.Unlock()
			h.writeFailed(m, err)
		} else {
			h.stats.messagesOut.Add(uint64(len(q.msgs)))
			h.stats.bytesOut.Add(uint64(q.bytes))
		}
		clear(q.msgs)
		q.msgs = q.msgs[:0]
		q.bytes = 0
		spare = q
	}
}

// kill marks the member dead and drops its queue.
func (m *member) kill() {
	m.mu.Lock()
	m.dead = true
	q := m.q
	if !m.running {
		m.q = nil
	} else {
		q = nil // the writer will find it dead and release it
	}
	m.mu.Unlock()
	if q != nil {
		putQueue(q)
	}
}
