package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nexio-go/nexio/wsroute"
)

// Hub is a set of broadcast rooms. Its methods are safe for concurrent
// use. Create one with New and share it between routes.
type Hub struct {
	opts Options

	// mu guards the room and member maps and every member's rooms. A
	// broadcast holds it for reading while it enqueues, which is memory
	// work only: no lock is ever held across a network write.
	mu      sync.RWMutex
	rooms   map[string]*room
	members map[*wsroute.Conn]*member
	byID    map[string]*member
	closed  bool
	drained chan struct{} // closed when shut down and no member is left

	writers sync.WaitGroup // member writers and slow-consumer closes
	stats   counters
}

type room struct {
	members []*member
	index   map[*member]int
}

// New returns a Hub. A nil opts means the defaults; invalid options panic
// with a "hub: " message. With Options.Broker set, New opens the broker.
func New(opts *Options) *Hub {
	h := &Hub{
		opts:    opts.withDefaults(),
		rooms:   make(map[string]*room),
		members: make(map[*wsroute.Conn]*member),
		byID:    make(map[string]*member),
		drained: make(chan struct{}),
	}
	if b := h.opts.Broker; b != nil {
		if err := b.Open(h.opts.Node, h.deliver); err != nil {
			// The broker reconnects by itself; local rooms work meanwhile.
			h.opts.Logger.Debug("hub: broker did not open; rooms stay local until it connects", "error", err)
		}
	}
	return h
}

// Node returns this hub's node name, as other nodes see it.
func (h *Hub) Node() string { return h.opts.Node }

// Join adds an accepted connection to rooms. The connection leaves every
// room by itself when it ends, however it ends.
func (h *Hub) Join(c *wsroute.Conn, rooms ...string) error {
	if c == nil || !c.Accepted() {
		return ErrConnClosed
	}
	select {
	case <-c.Done():
		return ErrConnClosed
	default:
	}
	var pm Member
	if h.opts.Broker != nil {
		pm = h.describe(c) // user code: not under the lock
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	m := h.members[c]
	isNew := m == nil
	if isNew {
		m = &member{c: c, h: h}
		h.members[c] = m
		h.byID[c.ID()] = m
		h.stats.members.Add(1)
	}
	var joined []string
	for _, name := range rooms {
		if slices.Contains(m.rooms, name) {
			continue
		}
		r := h.rooms[name]
		if r == nil {
			r = &room{index: make(map[*member]int)}
			h.rooms[name] = r
			h.stats.rooms.Add(1)
			if b := h.opts.Broker; b != nil {
				b.Subscribe(name)
			}
		}
		r.index[m] = len(r.members)
		r.members = append(r.members, m)
		m.rooms = append(m.rooms, name)
		joined = append(joined, name)
		if b := h.opts.Broker; b != nil {
			h.brokerErr(b.AddMember(context.Background(), name, pm))
		}
	}
	if isNew {
		// Registered after the maps are filled: if the connection already
		// ended, remove runs at once (on its own goroutine) and takes the
		// member out again.
		c.OnClose(func() { h.remove(m) })
	}
	h.mu.Unlock()
	h.announce(joined, m, true)
	return nil
}

// Leave removes the connection from rooms.
func (h *Hub) Leave(c *wsroute.Conn, rooms ...string) {
	h.mu.Lock()
	m := h.members[c]
	if m == nil {
		h.mu.Unlock()
		return
	}
	var left []string
	for _, name := range rooms {
		if h.leaveLocked(m, name) {
			left = append(left, name)
		}
	}
	empty := len(m.rooms) == 0
	if empty {
		h.forgetLocked(m)
	}
	h.mu.Unlock()
	if empty {
		m.kill() // its OnClose registration finds it gone and does nothing
	}
	h.announce(left, m, false)
}

// remove takes a member out of every room when its connection ends.
func (h *Hub) remove(m *member) {
	m.kill()
	h.mu.Lock()
	if h.members[m.c] != m {
		h.mu.Unlock()
		return
	}
	left := slices.Clone(m.rooms)
	for _, name := range left {
		h.leaveLocked(m, name)
	}
	h.forgetLocked(m)
	h.mu.Unlock()
	h.announce(left, m, false)
}

// leaveLocked removes m from room name; h.mu must be held for writing.
func (h *Hub) leaveLocked(m *member, name string) bool {
	i := slices.Index(m.rooms, name)
	if i < 0 {
		return false
	}
	m.rooms = slices.Delete(m.rooms, i, i+1)
	if b := h.opts.Broker; b != nil {
		h.brokerErr(b.RemoveMember(context.Background(), name, Member{ConnID: m.c.ID(), Node: h.opts.Node}))
	}
	r := h.rooms[name]
	i = r.index[m]
	last := len(r.members) - 1
	r.members[i] = r.members[last]
	r.index[r.members[i]] = i
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, m)
	if len(r.members) == 0 {
		delete(h.rooms, name)
		h.stats.rooms.Add(-1)
		if b := h.opts.Broker; b != nil {
			b.Unsubscribe(name)
		}
	}
	return true
}

func (h *Hub) forgetLocked(m *member) {
	delete(h.members, m.c)
	delete(h.byID, m.c.ID())
	h.stats.members.Add(-1)
	if h.closed && len(h.members) == 0 {
		select {
		case <-h.drained:
		default:
			close(h.drained)
		}
	}
}

// announce runs the presence hooks, outside the lock. The broker was
// told under the lock, so that a join and a leave reach it in order.
func (h *Hub) announce(rooms []string, m *member, joined bool) {
	hook := h.opts.OnLeave
	if joined {
		hook = h.opts.OnJoin
	}
	if hook == nil {
		return
	}
	for _, r := range rooms {
		hook(r, m.c)
	}
}

func (h *Hub) brokerErr(err error) {
	if err != nil {
		h.stats.brokerErrors.Add(1)
		h.opts.Logger.Debug("hub: broker presence update failed", "error", err)
	}
}

func (h *Hub) describe(c *wsroute.Conn) Member {
	pm := Member{ConnID: c.ID(), Node: h.opts.Node}
	if h.opts.Describe != nil {
		pm.Meta = h.opts.Describe(c)
	}
	return pm
}

// BroadcastOption changes one broadcast. See Except.
type BroadcastOption struct {
	except   *wsroute.Conn
	exceptID string
}

// Except leaves c out of a broadcast (typically the sender).
func Except(c *wsroute.Conn) BroadcastOption { return BroadcastOption{except: c, exceptID: c.ID()} }

// ExceptID leaves the connection with this ID out of a broadcast, on any
// node.
func ExceptID(connID string) BroadcastOption { return BroadcastOption{exceptID: connID} }

// Broadcast sends a message to every member of room, on every node. It
// never blocks on a client: each local member gets the message in its
// bounded queue, and a full queue applies Options.SlowConsumer. Messages
// to one member arrive in the order they were broadcast. data is copied,
// once. The error is ErrClosed, or wraps ErrPublish when other nodes
// could not be reached (local members were served).
func (h *Hub) Broadcast(ctx context.Context, room string, typ wsroute.MessageType, data []byte, opts ...BroadcastOption) error {
	return h.broadcast(ctx, room, typ, bytes.Clone(data), opts)
}

// BroadcastText is Broadcast of a text message.
func (h *Hub) BroadcastText(ctx context.Context, room, text string, opts ...BroadcastOption) error {
	return h.broadcast(ctx, room, wsroute.MessageText, []byte(text), opts)
}

// BroadcastJSON is Broadcast of v encoded as JSON in a text message; it
// is encoded once, whatever the number of members.
func (h *Hub) BroadcastJSON(ctx context.Context, room string, v any, opts ...BroadcastOption) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("hub: BroadcastJSON: %w", err)
	}
	return h.broadcast(ctx, room, wsroute.MessageText, b, opts)
}

func (h *Hub) broadcast(ctx context.Context, room string, typ wsroute.MessageType, data []byte, opts []BroadcastOption) error {
	var o BroadcastOption
	for _, opt := range opts {
		if opt.except != nil {
			o.except = opt.except
		}
		if opt.exceptID != "" {
			o.exceptID = opt.exceptID
		}
	}
	if !h.local(room, typ, data, o) {
		return ErrClosed
	}
	b := h.opts.Broker
	if b == nil {
		return nil
	}
	err := b.Publish(ctx, Envelope{Origin: h.opts.Node, Room: room, Except: o.exceptID, Type: typ, Data: data})
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return fmt.Errorf("%w: %w", ErrPublish, err)
	}
	return nil
}

// local enqueues a message for this node's members of room; false if the
// hub is shut down.
func (h *Hub) local(room string, typ wsroute.MessageType, data []byte, o BroadcastOption) bool {
	msg := wsroute.Message{Type: typ, Data: data}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	h.stats.broadcasts.Add(1)
	r := h.rooms[room]
	if r == nil {
		return true
	}
	for _, m := range r.members {
		if m.c == o.except || (o.exceptID != "" && o.except == nil && m.c.ID() == o.exceptID) {
			continue
		}
		m.enqueue(msg)
	}
	return true
}

// SendTo sends a message to the connection with ID connID, on whichever
// node holds it. It returns ErrNoSuchConn when, without a Broker, this
// node does not hold it.
func (h *Hub) SendTo(ctx context.Context, connID string, typ wsroute.MessageType, data []byte) error {
	data = bytes.Clone(data)
	h.mu.RLock()
	closed := h.closed
	m := h.byID[connID]
	if m != nil && !closed {
		m.enqueue(wsroute.Message{Type: typ, Data: data})
	}
	h.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case m != nil:
		return nil
	case h.opts.Broker == nil:
		return ErrNoSuchConn
	}
	err := h.opts.Broker.Publish(ctx, Envelope{Origin: h.opts.Node, Target: connID, Type: typ, Data: data})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoSuchConn):
		return err // no node holds it: not a broker failure
	}
	h.stats.brokerErrors.Add(1)
	return fmt.Errorf("%w: %w", ErrPublish, err)
}

// deliver takes a message from another node.
func (h *Hub) deliver(e Envelope) {
	if e.Origin == h.opts.Node {
		return
	}
	h.stats.received.Add(1)
	if e.Target != "" {
		h.mu.RLock()
		if m := h.byID[e.Target]; m != nil && !h.closed {
			m.enqueue(wsroute.Message{Type: e.Type, Data: e.Data})
		}
		h.mu.RUnlock()
		return
	}
	h.local(e.Room, e.Type, e.Data, BroadcastOption{exceptID: e.Except})
}

// Members returns this node's members of room.
func (h *Hub) Members(room string) []*wsroute.Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[room]
	if r == nil {
		return nil
	}
	out := make([]*wsroute.Conn, len(r.members))
	for i, m := range r.members {
		out[i] = m.c
	}
	return out
}

// Count returns the number of this node's members of room.
func (h *Hub) Count(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.rooms[room]; r != nil {
		return len(r.members)
	}
	return 0
}

// Rooms returns the rooms with members on this node, sorted.
func (h *Hub) Rooms() []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.rooms))
	for name := range h.rooms {
		out = append(out, name)
	}
	h.mu.RUnlock()
	slices.Sort(out)
	return out
}

// RoomCounts returns each room of this node with its member count.
func (h *Hub) RoomCounts() map[string]int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string]int, len(h.rooms))
	for name, r := range h.rooms {
		out[name] = len(r.members)
	}
	return out
}

// Presence returns the members of room on every node, with what
// Options.Describe shares of each. Without a Broker it is this node's.
// With one, it is read from the broker (see the broker for how fresh).
func (h *Hub) Presence(ctx context.Context, room string) ([]Member, error) {
	if b := h.opts.Broker; b != nil {
		return b.Members(ctx, room)
	}
	conns := h.Members(room)
	out := make([]Member, len(conns))
	for i, c := range conns {
		out[i] = h.describe(c)
	}
	return out, nil
}

// Shutdown closes every member with 1001 "going away", refuses new joins
// and broadcasts, and waits until every member has left and every writer
// has stopped, or ctx ends. It closes the Broker.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	if len(h.members) == 0 {
		close(h.drained)
	}
	conns := make([]*wsroute.Conn, 0, len(h.members))
	for c := range h.members {
		conns = append(conns, c)
	}
	h.mu.Unlock()

	// One goroutine per member: each close is bounded by the route's
	// CloseTimeout and they must not wait on one another.
	var closers sync.WaitGroup
	for _, c := range conns {
		closers.Add(1)
		go func() {
			defer closers.Done()
			c.Close(wsroute.StatusGoingAway, "going away")
		}()
	}
	done := make(chan struct{})
	go func() {
		closers.Wait()
		h.writers.Wait()
		<-h.drained
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if b := h.opts.Broker; b != nil {
		if cerr := b.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return err
}

// dropped counts a dropped message and logs once per member.
func (h *Hub) dropped(m *member) {
	h.stats.dropped.Add(1)
	if m.warned.CompareAndSwap(false, true) {
		h.opts.Logger.Warn("hub: member queue full; dropping messages (Options.SlowConsumer)",
			"conn", m.c.ID(), "policy", h.opts.SlowConsumer.String())
	}
}

func (h *Hub) slowConsumer(m *member) {
	h.stats.slowDisconnects.Add(1)
	h.opts.Logger.Warn("hub: slow consumer disconnected with 1008", "conn", m.c.ID(),
		"queue_messages", h.opts.QueueMessages, "queue_bytes", h.opts.QueueBytes)
	h.writers.Add(1)
	go func() {
		defer h.writers.Done()
		m.c.Close(wsroute.StatusPolicyViolation, "slow consumer")
	}()
}

func (h *Hub) writeFailed(m *member, err error) {
	h.stats.writeErrors.Add(1)
	h.opts.Logger.Debug("hub: write to member failed", "conn", m.c.ID(), "error", err)
}
