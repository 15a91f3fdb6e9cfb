package hub

import (
	"strconv"
	"sync"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// roomLog is the memory history of one room (Options.History without a
// Broker): the newest History.Size messages, in a ring. Its offsets are
// assigned here and nowhere else: append runs under mu, with the hub's
// lock held for reading, and enqueues the message for the room's members
// before the next append, so every member sees the room's messages in
// offset order.
//
// A log whose TTL passed since its last message drops its messages when
// it is next used, and is removed (with its epoch) by sweep once no
// member of this node is in its room; a later message starts a new
// epoch. No goroutine is spent on expiry.
type roomLog struct {
	mu      sync.Mutex
	epoch   string
	last    uint64     // offset of the newest message; 0 before the first
	ring    []logEntry // at most History.Size; the oldest at head
	head    int
	lastAt  int64 // unix nanoseconds of the newest message (or creation)
	expires bool
}

// logEntry is one kept message: as published (for History) and as
// members receive it (after Options.Stamp; the same bytes without it).
type logEntry struct {
	typ  wsroute.MessageType
	data []byte
	out  wsroute.Message
}

// logFor returns room's log, creating it; h.mu must be held for
// writing.
func (h *Hub) logForLocked(room string, now int64) *roomLog {
	if lg := h.logs[room]; lg != nil {
		return lg
	}
	h.sweepLocked(now)
	h.logGen++
	lg := &roomLog{
		epoch:   h.epoch + "-" + strconv.FormatUint(h.logGen, 36),
		lastAt:  now,
		expires: h.opts.History.TTL > 0,
	}
	h.logs[room] = lg
	return lg
}

// sweepLocked removes the logs that expired in rooms without members on
// this node, at most once per TTL; h.mu must be held for writing. It
// runs when a log is created, so its cost is spread over new rooms.
func (h *Hub) sweepLocked(now int64) {
	ttl := int64(h.opts.History.TTL)
	if ttl <= 0 || now-h.lastSweep < ttl {
		return
	}
	h.lastSweep = now
	for name, lg := range h.logs {
		if now-lg.lastAt > ttl && h.rooms[name] == nil {
			delete(h.logs, name)
		}
	}
}

// expire drops the messages of a log whose TTL passed; lg.mu must be
// held, or h.mu for writing.
func (lg *roomLog) expire(now int64, ttl time.Duration) {
	if lg.expires && len(lg.ring) > 0 && now-lg.lastAt > int64(ttl) {
		clear(lg.ring)
		lg.ring = lg.ring[:0]
		lg.head = 0
	}
}

// add keeps a message and returns its position; lg.mu must be held.
func (lg *roomLog) add(h *Hub, room string, typ wsroute.MessageType, data []byte, now int64) (Position, wsroute.Message) {
	lg.expire(now, h.opts.History.TTL)
	lg.last++
	lg.lastAt = now
	pos := Position{Epoch: lg.epoch, Offset: lg.last}
	out := wsroute.Message{Type: typ, Data: data}
	if h.opts.Stamp != nil {
		out.Type, out.Data = h.opts.Stamp(room, pos, typ, data)
	}
	e := logEntry{typ: typ, data: data, out: out}
	if size := h.opts.History.Size; len(lg.ring) < size {
		lg.ring = append(lg.ring, e)
	} else {
		lg.ring[lg.head] = e
		lg.head = (lg.head + 1) % size
	}
	return pos, out
}

// position is the log's newest position.
func (lg *roomLog) position() Position { return Position{Epoch: lg.epoch, Offset: lg.last} }

// oldest is the offset of the oldest kept message (last+1 when none).
func (lg *roomLog) oldest() uint64 { return lg.last - uint64(len(lg.ring)) + 1 }

// at returns the kept message at offset off, which must be kept.
func (lg *roomLog) at(off uint64) *logEntry {
	i := (lg.head + int(off-lg.oldest())) % len(lg.ring)
	return &lg.ring[i]
}
