package hub

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// Position places a message in a room's history.
type Position struct {
	// Epoch names one incarnation of a room's stream: a new one when
	// its history was lost (a new hub without a broker, or a broker's
	// store that lost its data).
	Epoch string
	// Offset is 1 for the first message of an epoch and grows by 1 for
	// each message after it.
	Offset uint64
}

// IsZero reports whether p is the zero Position ("from the start", or
// "live only" for JoinFrom).
func (p Position) IsZero() bool { return p == Position{} }

// History says how much of each room's past a Hub keeps. The zero value
// keeps nothing: history is off and costs nothing.
type History struct {
	// Size is the number of messages kept per room: the newest Size.
	// 0 turns history off.
	Size int
	// TTL is how long a room's history outlives its last message: TTL
	// after it, the room's messages are dropped. A negative TTL keeps
	// them as long as the Hub (or the broker's store) lives. Defaults to
	// 10 minutes.
	TTL time.Duration
}

// Entry is one kept message.
type Entry struct {
	Position Position
	Type     wsroute.MessageType
	Data     []byte
}

// Recovery is what JoinFrom could give a member.
type Recovery struct {
	// Recovered is false when since could not be honoured (another
	// epoch, or older than what is kept): nothing was replayed and the
	// member joined live.
	Recovered bool
	// Missed is the number of messages replayed.
	Missed int
	// Position is where the member now stands: the last message replayed,
	// or the room's newest message when nothing was.
	Position Position
}

// Publish is Broadcast that returns the message's position in the room's
// history. Offsets of a room are assigned in one place (this hub without
// a broker; the broker's store with one), so every node and every member
// sees the same position for the same message, and every member receives
// a room's messages in offset order.
//
// Without Options.History it broadcasts and returns the zero Position.
// Without a broker the message is kept and enqueued for this node's
// members before Publish returns. With a broker, the broker stores it
// and this node's members get it when it comes back from the broker, as
// every other node's do; an error then wraps ErrNotStored and means no
// member anywhere received it.
func (h *Hub) Publish(ctx context.Context, room string, typ wsroute.MessageType, data []byte, opts ...BroadcastOption) (Position, error) {
	if err := checkType("Publish", typ); err != nil {
		return Position{}, err
	}
	o := mergeOptions(opts)
	data = bytes.Clone(data)
	if h.opts.History.Size == 0 {
		return Position{}, h.broadcast(ctx, room, typ, data, opts)
	}
	return h.publish(ctx, room, typ, data, o)
}

func (h *Hub) publish(ctx context.Context, room string, typ wsroute.MessageType, data []byte, o BroadcastOption) (Position, error) {
	if h.hb != nil {
		return h.append(ctx, room, typ, data, o)
	}
	now := time.Now().UnixNano()
	h.mu.RLock()
	lg := h.logs[room]
	for lg == nil && !h.closed {
		h.mu.RUnlock()
		h.mu.Lock()
		if !h.closed {
			h.logForLocked(room, now)
		}
		h.mu.Unlock()
		h.mu.RLock()
		lg = h.logs[room]
	}
	if h.closed {
		h.mu.RUnlock()
		return Position{}, ErrClosed
	}
	h.stats.broadcasts.Add(1)
	lg.mu.Lock()
	pos, msg := lg.add(h, room, typ, data, now)
	if r := h.rooms[room]; r != nil {
		for _, m := range r.members {
			if !o.skip(m) {
				m.enqueue(room, pos, msg)
			}
		}
	}
	lg.mu.Unlock()
	h.mu.RUnlock()
	return pos, nil
}

// JoinFrom joins c to room and first hands it every message of the room
// after since, then the live ones, with no gap and no duplicate at the
// seam even while others publish. The replay goes through c's queue like
// live messages: a replay larger than the queue is handed over as the
// queue drains, so it does not make a healthy client a slow consumer.
//
// When since is of another epoch, or older than the oldest kept message
// (or from a future the room has not reached), nothing is replayed, c
// joins live and Recovered is false: the caller tells its client, which
// resyncs from the application's own store. Never is a part of what was
// missed replayed. A zero since joins live, with Recovered true.
// Position is where c now stands: the room's newest message when c
// joined (the last one replayed, if any). With a broker and a zero
// since, it is the newest message this node has delivered (zero if
// none yet).
//
// Like Join, JoinFrom may be called before Accept. It returns
// ErrAlreadyMember if c is in room already. Without Options.History it
// is Join, with Recovered true only for a zero since. With a broker,
// JoinFrom reads the room's history from the broker's store; if that
// fails, c does not join and the error says why.
func (h *Hub) JoinFrom(c *wsroute.Conn, room string, since Position) (Recovery, error) {
	if c == nil || ended(c) {
		return Recovery{}, ErrConnClosed
	}
	if h.hb != nil && !since.IsZero() {
		return h.joinFromStore(c, room, since)
	}
	meta := h.metaFor(c)
	now := time.Now().UnixNano()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return Recovery{}, ErrClosed
	}
	m := h.memberLocked(c, meta)
	if slices.Contains(m.rooms, room) {
		h.mu.Unlock()
		h.settle(m)
		return Recovery{}, ErrAlreadyMember
	}
	var rec Recovery
	var replay []wsroute.Message
	switch {
	case h.hb != nil: // zero since
		rec = Recovery{Recovered: true}
		if r := h.rooms[room]; r != nil {
			rec.Position = r.pos
		}
	case h.logs != nil:
		rec, replay = h.recoverLocked(room, since, now)
	default:
		rec = Recovery{Recovered: since.IsZero()}
	}
	h.joinLocked(m, room)
	if f := h.opts.Seam; f != nil {
		// h.mu is held for writing: no message of the room is
		// delivered before the seam's is queued behind the replay.
		typ, data := f(room, c, rec)
		replay = append(replay, wsroute.Message{Type: typ, Data: data})
	}
	if len(replay) > 0 {
		m.mu.Lock()
		if !m.dead {
			m.catchups = append(m.catchups, &catchup{room: room, msgs: replay, replay: len(replay)})
			m.startLocked()
		}
		m.mu.Unlock()
	}
	h.mu.Unlock()
	h.settle(m)
	return rec, nil
}

// recoverLocked judges since against room's memory log and returns the
// messages to replay; h.mu must be held for writing, so no message of
// the room is being published meanwhile.
func (h *Hub) recoverLocked(room string, since Position, now int64) (Recovery, []wsroute.Message) {
	// A room that kept nothing yet gets its epoch now, so that a member
	// of an empty room stands somewhere (offset 0 of that epoch) and can
	// resume from there.
	lg := h.logForLocked(room, now)
	lg.expire(now, h.opts.History.TTL)
	rec := Recovery{Position: lg.position()}
	switch {
	case since.IsZero():
		rec.Recovered = true
		return rec, nil
	case since.Epoch != lg.epoch, since.Offset > lg.last, since.Offset+1 < lg.oldest():
		return rec, nil
	}
	rec.Recovered = true
	rec.Missed = int(lg.last - since.Offset)
	if rec.Missed == 0 {
		return rec, nil
	}
	replay := make([]wsroute.Message, 0, rec.Missed)
	for off := since.Offset + 1; off <= lg.last; off++ {
		replay = append(replay, lg.at(off).out)
	}
	return rec, replay
}

// History lists the kept messages of room after since (zero: from the
// oldest kept), at most limit of them (limit <= 0: all), the newest last,
// and the room's current position (its epoch and newest offset; offset 0
// of its epoch for a room that has kept nothing yet). When since is of another epoch, the
// list starts at the oldest kept message. Data is as published, before
// Options.Stamp. With a broker the list is read from the broker's store.
// Without Options.History it lists nothing.
func (h *Hub) History(ctx context.Context, room string, since Position, limit int) ([]Entry, Position, error) {
	if h.hb != nil {
		return h.hb.History(ctx, room, since, limit)
	}
	if h.logs == nil {
		return nil, Position{}, nil
	}
	now := time.Now().UnixNano()
	h.mu.RLock()
	lg := h.logs[room]
	for lg == nil && !h.closed {
		// An empty room's position is offset 0 of its epoch, as with a
		// broker's store: the epoch is made now.
		h.mu.RUnlock()
		h.mu.Lock()
		if !h.closed {
			h.logForLocked(room, now)
		}
		h.mu.Unlock()
		h.mu.RLock()
		lg = h.logs[room]
	}
	defer h.mu.RUnlock()
	if lg == nil { // shut down
		return nil, Position{}, nil
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.expire(now, h.opts.History.TTL)
	from := lg.oldest()
	if since.Epoch == lg.epoch && since.Offset+1 > from {
		from = since.Offset + 1
	}
	var out []Entry
	for off := from; off <= lg.last && (limit <= 0 || len(out) < limit); off++ {
		e := lg.at(off)
		out = append(out, Entry{Position: Position{Epoch: lg.epoch, Offset: off}, Type: e.typ, Data: bytes.Clone(e.data)})
	}
	return out, lg.position(), nil
}
