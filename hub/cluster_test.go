package hub_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nexio-go/nexio/hub"
)

// memCluster is an in-process HistoryBroker shared by several Hubs, for
// testing the Hub's side of the contract without a server: each node
// gets its deliveries in order on its own goroutine, a room's store
// assigns offsets under one lock, and a test can lose deliveries to a
// node or make the store forget a room (a new epoch).
type memCluster struct {
	mu      sync.Mutex
	nodes   map[string]*memNode
	streams map[string]*memStream
	members map[string]map[string]hub.Member // room → conn ID → member
	epochs  int
	lose    func(node string, e hub.Envelope) bool // drop a delivery
	// slowSubscribe makes subscriptions take effect only at
	// applySubscriptions, as a real broker's do some time after
	// Subscribe returns.
	slowSubscribe bool
}

// applySubscriptions makes the subscriptions made so far take effect.
func (c *memCluster) applySubscriptions() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		for room, k := range n.wanted {
			n.subs[room] = k
		}
	}
}

type memStream struct {
	epoch   string
	last    uint64
	entries []hub.Entry
}

type memNode struct {
	c       *memCluster
	name    string
	deliver func(hub.Envelope)
	subs    map[string]int
	wanted  map[string]int // with slowSubscribe
	in      chan hub.Envelope
	done    chan struct{}
}

func newMemCluster() *memCluster {
	return &memCluster{nodes: map[string]*memNode{}, streams: map[string]*memStream{}, members: map[string]map[string]hub.Member{}}
}

func (c *memCluster) broker() *memNode {
	return &memNode{c: c, subs: map[string]int{}, wanted: map[string]int{}, in: make(chan hub.Envelope, 1<<16), done: make(chan struct{})}
}

// forget makes the store lose room: its next message starts a new epoch.
func (c *memCluster) forget(room string) {
	c.mu.Lock()
	delete(c.streams, room)
	c.mu.Unlock()
}

// sendLocked queues e for every node subscribed to e.Room but skip.
func (c *memCluster) sendLocked(e hub.Envelope, skip string) {
	for name, n := range c.nodes {
		if name == skip || n.subs[e.Room] == 0 {
			continue
		}
		if c.lose != nil && e.Presence == nil && c.lose(name, e) {
			continue
		}
		n.in <- e
	}
}

func (n *memNode) Open(node string, deliver func(hub.Envelope)) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.deliver != nil {
		return fmt.Errorf("memCluster: already open")
	}
	n.name, n.deliver = node, deliver
	n.c.nodes[node] = n
	go func() {
		defer close(n.done)
		for e := range n.in {
			n.deliver(e)
		}
	}()
	return nil
}

func (n *memNode) Subscribe(room string) {
	n.c.mu.Lock()
	n.wanted[room]++
	if !n.c.slowSubscribe {
		n.subs[room]++
	}
	n.c.mu.Unlock()
}

func (n *memNode) Unsubscribe(room string) {
	n.c.mu.Lock()
	n.wanted[room]--
	n.subs[room]--
	n.c.mu.Unlock()
}

func (n *memNode) Publish(ctx context.Context, e hub.Envelope) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if e.Target != "" {
		return hub.ErrNoSuchConn
	}
	n.c.sendLocked(e, n.name)
	return nil
}

func (n *memNode) AddMember(ctx context.Context, room string, m hub.Member) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.members[room] == nil {
		n.c.members[room] = map[string]hub.Member{}
	}
	n.c.members[room][m.ConnID] = m
	n.c.sendLocked(hub.Envelope{Origin: n.name, Room: room, Presence: &hub.PresenceEvent{Joined: true, Member: m}}, n.name)
	return nil
}

func (n *memNode) RemoveMember(ctx context.Context, room string, m hub.Member) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if old, ok := n.c.members[room][m.ConnID]; ok {
		delete(n.c.members[room], m.ConnID)
		n.c.sendLocked(hub.Envelope{Origin: n.name, Room: room, Presence: &hub.PresenceEvent{Member: old}}, n.name)
	}
	return nil
}

func (n *memNode) Members(ctx context.Context, room string) ([]hub.Member, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	var out []hub.Member
	for _, m := range n.c.members[room] {
		out = append(out, m)
	}
	return out, nil
}

func (n *memNode) Close() error {
	n.c.mu.Lock()
	if n.c.nodes[n.name] == n {
		delete(n.c.nodes, n.name)
		close(n.in)
	}
	n.c.mu.Unlock()
	<-n.done
	return nil
}

func (n *memNode) Append(ctx context.Context, e hub.Envelope, h hub.History) (hub.Position, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[e.Room]
	if s == nil {
		c.epochs++
		s = &memStream{epoch: "E" + strconv.Itoa(c.epochs)}
		c.streams[e.Room] = s
	}
	s.last++
	e.Position = hub.Position{Epoch: s.epoch, Offset: s.last}
	s.entries = append(s.entries, hub.Entry{Position: e.Position, Type: e.Type, Data: e.Data})
	if len(s.entries) > h.Size {
		s.entries = s.entries[len(s.entries)-h.Size:]
	}
	c.sendLocked(e, "")
	return e.Position, nil
}

func (n *memNode) History(ctx context.Context, room string, since hub.Position, limit int) ([]hub.Entry, hub.Position, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[room]
	if s == nil {
		c.epochs++
		s = &memStream{epoch: "E" + strconv.Itoa(c.epochs)}
		c.streams[room] = s
	}
	var out []hub.Entry
	for _, en := range s.entries {
		if since.Epoch == s.epoch && en.Position.Offset <= since.Offset {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, en)
	}
	return out, hub.Position{Epoch: s.epoch, Offset: s.last}, nil
}
