package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/nexio-go/nexio/wsroute"
)

// Hub is a set of broadcast rooms. Its methods are safe for concurrent
// use. Create one with New and share it between routes.
type Hub struct {
	opts Options
	hb   HistoryBroker // the broker, when it keeps the history (Options.History set)

	// mu guards the room, member and log maps and every member's rooms.
	// A broadcast holds it for reading while it enqueues, which is memory
	// work only: no lock is ever held across a network write. Lock order:
	// mu, then a room's log or seq lock, then a member's mu.
	mu      sync.RWMutex
	rooms   map[string]*room
	members map[*wsroute.Conn]*member
	byID    map[string]*member
	closed  bool
	drained chan struct{} // closed when shut down and no member is left

	// Memory history (Options.History without a Broker); see log.go.
	epoch     string              // this hub's incarnation
	logs      map[string]*roomLog // rooms with kept messages
	logGen    uint64              // logs created, for their epochs
	lastSweep int64               // when expired logs were last removed

	// With a HistoryBroker: the store reads of JoinFrom in flight, so
	// that members resuming from the same message share one (see
	// readStore).
	readsMu sync.Mutex
	reads   map[storeKey]*storeRead

	writers    sync.WaitGroup // hub writers, member writers and slow-consumer closes
	wq         writeQueue     // members waiting for a writer (writers.go)
	maxWriters int            // hub writers at most: GOMAXPROCS when made
	stats      counters
}

type room struct {
	members []*member
	index   map[*member]int
	held    int // members whose connection is not accepted yet

	// With a HistoryBroker: the room's stream as this node delivered
	// it, so that a duplicate is dropped and a gap is filled. seq
	// orders deliveries of the room; pos is guarded by seq, or by h.mu
	// held for writing.
	seq sync.Mutex
	pos Position // last delivered; zero Epoch: nothing delivered yet
}

// New returns a Hub. A nil opts means the defaults; invalid options panic
// with a "hub: " message.
//
// With Options.Broker set, New opens the broker. If the broker's backend
// cannot be reached yet (an error wrapping ErrUnavailable), New logs it
// at ERROR and returns a Hub whose rooms stay local until the broker
// connects, which it keeps trying to do by itself. Any other error from
// Open means the broker can never serve this Hub (most often a Broker
// given to two Hubs), and New panics with it: a Hub that silently never
// hears other nodes is worse than a failed start.
func New(opts *Options) *Hub {
	h := &Hub{
		opts:    opts.withDefaults(),
		rooms:   make(map[string]*room),
		members: make(map[*wsroute.Conn]*member),
		byID:    make(map[string]*member),
		drained: make(chan struct{}),
		// More writers than processors would only take turns.
		maxWriters: runtime.GOMAXPROCS(0),
	}
	if h.opts.History.Size > 0 {
		if h.opts.Broker != nil {
			h.hb = h.opts.Broker.(HistoryBroker) // checked by withDefaults
			h.reads = make(map[storeKey]*storeRead)
		} else {
			var b [6]byte
			rand.Read(b[:])
			h.epoch = base64.RawURLEncoding.EncodeToString(b[:])
			h.logs = make(map[string]*roomLog)
		}
	}
	if b := h.opts.Broker; b != nil {
		if err := b.Open(h.opts.Node, h.deliver); err != nil {
			if !errors.Is(err, ErrUnavailable) {
				panic(fmt.Sprintf("hub: New: Options.Broker (%T) cannot serve this hub: %v "+
					"(a Broker serves exactly one Hub: give each Hub its own, and do not reuse a closed one)", b, err))
			}
			h.opts.Logger.Error("hub: broker unavailable; rooms stay local to this node until it connects (it retries by itself)",
				"node", h.opts.Node, "error", err)
		}
	}
	return h
}

// Node returns this hub's node name, as other nodes see it.
func (h *Hub) Node() string { return h.opts.Node }

// Join adds a connection to rooms. The connection leaves every room by
// itself when it ends, however it ends.
//
// Join may be called before Accept: membership then starts right away
// but stays invisible until the handshake completes. Messages broadcast
// meanwhile wait in the member's queue and go out once the connection is
// accepted, so a client that has seen its 101 response has missed no
// broadcast; OnJoin, OnPresence, Count, Members and Presence show the
// member only from the handshake on. A connection refused, or closed
// before it was accepted, leaves without ever having been shown.
func (h *Hub) Join(c *wsroute.Conn, rooms ...string) error {
	if c == nil || ended(c) {
		return ErrConnClosed
	}
	meta := h.metaFor(c)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	m := h.memberLocked(c, meta)
	for _, name := range rooms {
		h.joinLocked(m, name)
	}
	h.mu.Unlock()
	h.settle(m)
	return nil
}

// ended reports whether c's connection is over: its context has ended,
// which Done would say too, but asking Done makes the context's channel,
// which a member would keep for its whole life.
func ended(c *wsroute.Conn) bool {
	return c.Context().Err() != nil
}

// metaFor runs Options.Describe, outside the hub's lock, for a
// connection that is not a member yet, when something will show it.
func (h *Hub) metaFor(c *wsroute.Conn) map[string]string {
	if h.opts.Describe == nil || (h.opts.Broker == nil && h.opts.OnPresence == nil) {
		return nil
	}
	h.mu.RLock()
	known := h.members[c] != nil
	h.mu.RUnlock()
	if known {
		return nil
	}
	return h.opts.Describe(c)
}

// memberLocked returns c's member, creating it on c's first join; h.mu
// must be held for writing. A member lives as long as its connection,
// whatever rooms it is in: it is registered with c once, so that room
// switches cost nothing that outlives them.
func (h *Hub) memberLocked(c *wsroute.Conn, meta map[string]string) *member {
	if m := h.members[c]; m != nil {
		return m
	}
	m := &member{c: c, h: h, meta: meta, active: c.Accepted()}
	m.held = !m.active
	h.members[c] = m
	h.byID[c.ID()] = m
	if !m.active {
		// OnAccept runs after the 101 is written and before Accept
		// returns. Join calls settle after this, which activates the
		// member itself if Accept completed in between (from another
		// goroutine) and the hook was registered too late to run.
		c.OnAccept(func() { h.activate(m) })
	}
	// Registered after the maps are filled: if the connection already
	// ended, remove runs at once (on its own goroutine) and takes the
	// member out again.
	c.OnClose(func() { h.remove(m) })
	return m
}

// joinLocked adds m to room name; h.mu must be held for writing.
func (h *Hub) joinLocked(m *member, name string) bool {
	if slices.Contains(m.rooms, name) {
		return false
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
	if !m.active {
		r.held++
		return true
	}
	if len(m.rooms) == 1 {
		h.stats.members.Add(1)
	}
	h.shown(m, name, true)
	return true
}

// shown tells the broker and the presence hooks that an accepted member
// joined or left a room; h.mu must be held for writing, so that a
// connection's changes reach the broker and its event queue in order.
func (h *Hub) shown(m *member, name string, joined bool) {
	if b := h.opts.Broker; b != nil {
		if joined {
			h.brokerErr(b.AddMember(context.Background(), name, m.presence()))
		} else {
			h.brokerErr(b.RemoveMember(context.Background(), name, Member{ConnID: m.c.ID(), Node: h.opts.Node}))
		}
	}
	if h.opts.OnJoin != nil || h.opts.OnLeave != nil || h.opts.OnPresence != nil {
		m.mu.Lock()
		m.events = append(m.events, event{room: name, joined: joined})
		m.mu.Unlock()
	}
}

// activate makes a member that joined before its handshake visible, and
// lets its queued messages go, once the connection is accepted.
func (h *Hub) activate(m *member) {
	h.mu.Lock()
	if h.members[m.c] != m || m.active {
		h.mu.Unlock()
		return
	}
	m.active = true
	for _, name := range m.rooms {
		h.rooms[name].held--
		h.shown(m, name, true)
	}
	if len(m.rooms) > 0 {
		h.stats.members.Add(1)
	}
	h.mu.Unlock()
	m.release()
	m.runEvents()
}

// settle finishes a change of m's membership outside the hub's lock: it
// activates m if its connection was accepted while it was being
// registered, and runs the presence hooks.
func (h *Hub) settle(m *member) {
	if !m.isActive() && m.c.Accepted() {
		h.activate(m)
	}
	m.runEvents()
}

// Leave removes the connection from rooms. The connection stays known to
// the hub (at no cost but its entry) and may join rooms again.
func (h *Hub) Leave(c *wsroute.Conn, rooms ...string) {
	h.mu.Lock()
	m := h.members[c]
	if m == nil {
		h.mu.Unlock()
		return
	}
	for _, name := range rooms {
		h.leaveLocked(m, name)
	}
	h.mu.Unlock()
	m.runEvents()
}

// remove takes a member out of every room when its connection ends.
func (h *Hub) remove(m *member) {
	m.kill()
	h.mu.Lock()
	if h.members[m.c] != m {
		h.mu.Unlock()
		return
	}
	for _, name := range slices.Clone(m.rooms) {
		h.leaveLocked(m, name)
	}
	delete(h.members, m.c)
	delete(h.byID, m.c.ID())
	if h.closed && len(h.members) == 0 {
		select {
		case <-h.drained:
		default:
			close(h.drained)
		}
	}
	h.mu.Unlock()
	m.runEvents()
}

// leaveLocked removes m from room name; h.mu must be held for writing.
func (h *Hub) leaveLocked(m *member, name string) bool {
	i := slices.Index(m.rooms, name)
	if i < 0 {
		return false
	}
	m.rooms = slices.Delete(m.rooms, i, i+1)
	m.dropCatchup(name)
	r := h.rooms[name]
	if m.active {
		h.shown(m, name, false)
		if len(m.rooms) == 0 {
			h.stats.members.Add(-1)
		}
	} else {
		r.held--
	}
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

func mergeOptions(opts []BroadcastOption) BroadcastOption {
	var o BroadcastOption
	for _, opt := range opts {
		if opt.except != nil {
			o.except = opt.except
		}
		if opt.exceptID != "" {
			o.exceptID = opt.exceptID
		}
	}
	return o
}

// skip reports whether o leaves m out.
func (o BroadcastOption) skip(m *member) bool {
	return m.c == o.except || (o.exceptID != "" && o.except == nil && m.c.ID() == o.exceptID)
}

// Broadcast sends a message to every member of room, on every node. It
// never blocks on a client: each local member gets the message in its
// bounded queue, and a full queue applies Options.SlowConsumer. Messages
// to one member arrive in the order they were broadcast. data is copied,
// once. The error is ErrClosed, or wraps ErrPublish when other nodes
// could not be reached (local members were served).
//
// With Options.History, Broadcast is Publish without the position: the
// message is kept in the room's history, and with a broker an error
// wraps ErrNotStored instead (no member received it).
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
	if err := checkType("Broadcast", typ); err != nil {
		return err
	}
	o := mergeOptions(opts)
	if h.opts.History.Size > 0 {
		_, err := h.publish(ctx, room, typ, data, o)
		return err
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
		if o.skip(m) {
			continue
		}
		m.enqueue(room, Position{}, msg)
	}
	return true
}

// SendTo sends a message to the connection with ID connID, on whichever
// node holds it. It returns ErrNoSuchConn when, without a Broker, this
// node does not hold it. A message sent to a member of this node after
// a JoinFrom of it returned reaches it after that JoinFrom's replay and
// Options.Seam message, even while they still wait to be written.
func (h *Hub) SendTo(ctx context.Context, connID string, typ wsroute.MessageType, data []byte) error {
	if err := checkType("SendTo", typ); err != nil {
		return err
	}
	data = bytes.Clone(data)
	h.mu.RLock()
	closed := h.closed
	m := h.byID[connID]
	if m != nil && !closed {
		m.enqueue("", Position{}, wsroute.Message{Type: typ, Data: data})
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

// deliver takes a message or a presence change from the broker.
func (h *Hub) deliver(e Envelope) {
	if e.Presence != nil {
		if f := h.opts.OnPresence; f != nil && e.Origin != h.opts.Node {
			f(e.Room, *e.Presence)
		}
		return
	}
	if h.hb != nil && e.Room != "" && !e.Position.IsZero() {
		// A stored message comes back to the node that appended it
		// too: that is how its local members get it, in the store's
		// order.
		if e.Origin != h.opts.Node {
			h.stats.received.Add(1)
		}
		h.deliverStored(e, true)
		return
	}
	if e.Origin == h.opts.Node {
		return
	}
	h.stats.received.Add(1)
	if e.Target != "" {
		h.mu.RLock()
		if m := h.byID[e.Target]; m != nil && !h.closed {
			m.enqueue("", Position{}, wsroute.Message{Type: e.Type, Data: e.Data})
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
	out := make([]*wsroute.Conn, 0, len(r.members)-r.held)
	for _, m := range r.members {
		if m.active {
			out = append(out, m.c)
		}
	}
	return out
}

// Count returns the number of this node's members of room.
func (h *Hub) Count(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.rooms[room]; r != nil {
		return len(r.members) - r.held
	}
	return 0
}

// Rooms returns the rooms with members on this node, sorted.
func (h *Hub) Rooms() []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.rooms))
	for name, r := range h.rooms {
		if len(r.members) > r.held {
			out = append(out, name)
		}
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
		if n := len(r.members) - r.held; n > 0 {
			out[name] = n
		}
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
// has stopped, or ctx ends. It closes the Broker. If ctx ends first,
// the closes already begun go on in the background (each bounded by the
// route's CloseTimeout) with one goroutine that waits for them, for the
// writers and for the last member to leave, then ends.
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
	// The waiter is owned by Shutdown; it ends once the closers, the
	// writers and the members are gone, even if Shutdown returned on ctx.
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

// checkType refuses a message type that cannot be sent before it is
// queued: in a member's writer it would fail the write and disconnect
// the member.
func checkType(op string, typ wsroute.MessageType) error {
	if typ == wsroute.MessageText || typ == wsroute.MessageBinary {
		return nil
	}
	return fmt.Errorf("hub: %s: %v is not a message type that can be sent; use wsroute.MessageText or wsroute.MessageBinary (nothing was sent)", op, typ)
}
