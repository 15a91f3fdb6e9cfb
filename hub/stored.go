package hub

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// History with a broker (a HistoryBroker): the broker's store assigns
// positions and keeps the messages; this node delivers each room's
// messages to its members as they come back from the broker, in
// position order, and reads the store to replay what a member missed.

// fillTimeout bounds a read of the store made to fill a gap in a room's
// deliveries; the broker's own timeout normally ends it sooner.
const fillTimeout = 10 * time.Second

// append stores a message through the broker.
func (h *Hub) append(ctx context.Context, room string, typ wsroute.MessageType, data []byte, o BroadcastOption) (Position, error) {
	h.mu.RLock()
	closed := h.closed
	h.mu.RUnlock()
	if closed {
		return Position{}, ErrClosed
	}
	h.stats.broadcasts.Add(1)
	pos, err := h.hb.Append(ctx, Envelope{Origin: h.opts.Node, Room: room, Except: o.exceptID, Type: typ, Data: data}, h.opts.History)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return Position{}, fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	return pos, nil
}

// stamp builds what members receive of a stored message.
func (h *Hub) stamp(room string, pos Position, typ wsroute.MessageType, data []byte) wsroute.Message {
	if h.opts.Stamp == nil {
		return wsroute.Message{Type: typ, Data: data}
	}
	t, d := h.opts.Stamp(room, pos, typ, data)
	return wsroute.Message{Type: t, Data: d}
}

// deliverStored hands a stored message to this node's members of its
// room, once and in position order: a message at or before the room's
// last delivered position is a duplicate and is dropped; one that skips
// offsets makes the node read the missing ones from the store first
// (when fill is true). A message of another epoch than the last one
// means the store lost the room's history: members go on with the new
// epoch, and a JoinFrom from the old one is not recovered.
func (h *Hub) deliverStored(e Envelope, fill bool) {
	p := e.Position
	h.mu.RLock()
	r := h.rooms[e.Room]
	if r == nil || h.closed {
		h.mu.RUnlock()
		return
	}
	r.seq.Lock()
	if r.pos.Epoch == p.Epoch {
		if p.Offset <= r.pos.Offset {
			r.seq.Unlock()
			h.mu.RUnlock()
			return
		}
		if p.Offset > r.pos.Offset+1 && fill {
			from := r.pos
			r.seq.Unlock()
			h.mu.RUnlock()
			h.fill(e.Room, from, p)
			h.deliverStored(e, false)
			return
		}
		if p.Offset > r.pos.Offset+1 {
			h.opts.Logger.Error("hub: messages of a room were lost between the broker and this node, and its store no longer has them",
				"room", e.Room, "after", r.pos, "next", p)
		}
	} else if r.pos.Epoch != "" {
		h.opts.Logger.Warn("hub: the broker's store started a new epoch for a room: its history was lost",
			"room", e.Room, "old", r.pos.Epoch, "new", p.Epoch)
	}
	r.pos = p
	msg := h.stamp(e.Room, p, e.Type, e.Data)
	o := BroadcastOption{exceptID: e.Except}
	for _, m := range r.members {
		if !o.skip(m) {
			m.enqueue(e.Room, p, msg)
		}
	}
	r.seq.Unlock()
	h.mu.RUnlock()
}

// fill delivers the stored messages of room after from and before next,
// which the broker did not deliver. Deliveries of the room wait for it,
// since the broker delivers one message at a time.
func (h *Hub) fill(room string, from, next Position) {
	ctx, cancel := context.WithTimeout(context.Background(), fillTimeout)
	defer cancel()
	entries, _, err := h.hb.History(ctx, room, from, int(next.Offset-from.Offset-1))
	if err != nil {
		h.stats.brokerErrors.Add(1)
		h.opts.Logger.Error("hub: could not read a room's missed messages from the broker's store",
			"room", room, "after", from, "next", next, "error", err)
		return
	}
	for _, en := range entries {
		if en.Position.Epoch != next.Epoch || en.Position.Offset >= next.Offset {
			break
		}
		h.deliverStored(Envelope{Room: room, Type: en.Type, Data: en.Data, Position: en.Position}, false)
	}
}

// joinFromStore is JoinFrom with a broker and a non-zero since. The
// member joins at once, its live messages of the room held; the store is
// read; then, with the room held still, the replay goes in front of the
// held messages, those the replay already has are dropped, and a gap
// between the two (messages stored after the read that this node had not
// subscribed in time to receive) is read from the store again.
func (h *Hub) joinFromStore(c *wsroute.Conn, room string, since Position) (Recovery, error) {
	meta := h.metaFor(c)
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
	cu := &catchup{room: room, fetching: true}
	m.mu.Lock()
	m.catchups = append(m.catchups, cu)
	m.mu.Unlock()
	h.joinLocked(m, room)
	h.mu.Unlock()
	h.settle(m)

	ctx := c.Context()
	var replay []wsroute.Message // stamped; this member's own slice
	rec := Recovery{Recovered: true}
	from := since
	for attempt := 0; ; attempt++ {
		rd := h.readStore(ctx, room, from)
		if rd.err != nil {
			h.Leave(c, room)
			return Recovery{}, fmt.Errorf("hub: JoinFrom: reading the history of room %q: %w", room, rd.err)
		}
		entries, cur := rd.entries, rd.cur
		if !follows(from, entries, cur) {
			rec.Recovered = false
			replay = nil
		} else {
			// append copies: rd.msgs is shared with the other members
			// that asked for the same read, and catch-ups consume theirs.
			replay = append(replay, rd.msgs...)
			if len(entries) > 0 {
				from = entries[len(entries)-1].Position
			} else if len(replay) == 0 {
				from = cur
			}
		}
		h.mu.Lock()
		m.mu.Lock()
		if h.members[c] != m || m.catchupFor(room) != cu {
			m.mu.Unlock()
			h.mu.Unlock()
			return Recovery{}, ErrConnClosed
		}
		r := h.rooms[room]
		if r.pos.Epoch == "" {
			// Nothing delivered to this node yet: what the store
			// holds now is where its deliveries must continue, so
			// that a message stored before this node subscribed is
			// read from the store, not lost.
			r.pos = cur
		}
		// The held messages that follow the replay: drop what the
		// replay has; a gap before the first one left means messages
		// this node never received.
		if rec.Recovered {
			i := 0
			for i < len(cu.pos) && cu.pos[i].Epoch == from.Epoch && cu.pos[i].Offset <= from.Offset {
				i++
			}
			gap := i < len(cu.pos) && cu.pos[i].Epoch == from.Epoch && cu.pos[i].Offset > from.Offset+1
			if gap && attempt < 3 {
				m.mu.Unlock()
				h.mu.Unlock()
				continue
			}
			if gap {
				rec.Recovered = false
				replay = nil
			} else {
				for range i {
					cu.dropFirst()
				}
			}
		}
		// seam is where the held live messages begin.
		seam := from
		if !rec.Recovered {
			seam = cur
			if len(cu.pos) > 0 {
				seam = Position{Epoch: cu.pos[0].Epoch, Offset: cu.pos[0].Offset - 1}
			}
			rec.Position = cur
			if len(cu.pos) > 0 {
				rec.Position = cu.pos[len(cu.pos)-1]
			}
		} else {
			rec.Missed = len(replay)
			rec.Position = from
			if len(cu.pos) > 0 {
				rec.Position = cu.pos[len(cu.pos)-1]
			}
			cu.after = from
			cu.msgs = append(replay, cu.msgs...)
			cu.replay = len(replay)
		}
		if f := h.opts.Seam; f != nil {
			sr := rec
			sr.Position = seam
			typ, data := f(room, c, sr)
			i := cu.replay
			cu.msgs = slices.Insert(cu.msgs, i, wsroute.Message{Type: typ, Data: data})
			cu.replay++
		}
		cu.fetching = false
		cu.pos = nil
		m.startLocked()
		m.mu.Unlock()
		h.mu.Unlock()
		return rec, nil
	}
}

// storeKey names a read of a room's stored history after a position.
type storeKey struct {
	room  string
	since Position
}

// storeRead is one read of a room's stored history, shared by every
// JoinFrom that asks for the same one while it is in flight: in a
// reconnect storm the members of a room come back resuming from the
// same message, and this node makes one store read and stamps each
// message once (Options.Stamp's promise) instead of once per member.
// Its fields are read-only once done is closed.
type storeRead struct {
	done    chan struct{}
	entries []Entry
	cur     Position
	msgs    []wsroute.Message // entries, stamped
	err     error
}

// readStore reads the history of room after since, or waits for the
// same read already in flight. The read itself is bounded by
// fillTimeout, not by ctx, so that the member that started it leaving
// does not fail the others; ctx only bounds this member's wait.
func (h *Hub) readStore(ctx context.Context, room string, since Position) *storeRead {
	key := storeKey{room, since}
	h.readsMu.Lock()
	rd := h.reads[key]
	if rd == nil {
		rd = &storeRead{done: make(chan struct{})}
		h.reads[key] = rd
		h.readsMu.Unlock()
		h.readStoreNow(rd, key)
	} else {
		h.readsMu.Unlock()
	}
	select {
	case <-rd.done:
		return rd
	case <-ctx.Done():
		return &storeRead{err: ctx.Err()}
	}
}

func (h *Hub) readStoreNow(rd *storeRead, key storeKey) {
	defer func() {
		h.readsMu.Lock()
		delete(h.reads, key)
		h.readsMu.Unlock()
		close(rd.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), fillTimeout)
	defer cancel()
	rd.entries, rd.cur, rd.err = h.hb.History(ctx, key.room, key.since, 0)
	if rd.err != nil {
		h.stats.brokerErrors.Add(1)
		return
	}
	rd.msgs = make([]wsroute.Message, len(rd.entries))
	for i, en := range rd.entries {
		rd.msgs[i] = h.stamp(key.room, en.Position, en.Type, en.Data)
	}
}

// follows reports whether entries, read from the store after since,
// start right after it: since is of the store's current epoch, not from
// its future, and nothing between it and the first entry was trimmed.
func follows(since Position, entries []Entry, cur Position) bool {
	if since.Epoch != cur.Epoch || since.Offset > cur.Offset {
		return false
	}
	if since.Offset == cur.Offset {
		return true
	}
	if len(entries) == 0 {
		return false
	}
	for i, en := range entries {
		if en.Position != (Position{Epoch: since.Epoch, Offset: since.Offset + uint64(i) + 1}) {
			return false
		}
	}
	return true
}
