package hub

import (
	"context"

	"github.com/nexio-go/nexio/wsroute"
)

// Broker carries a Hub's rooms across processes. A Hub without one is
// in-process and pays nothing for it. hub/redisbroker implements it on
// Redis pub/sub.
//
// The Hub delivers every broadcast to its own members itself, then
// publishes it; the Broker hands it to the other nodes, never back to the
// node that published it, so nothing is delivered twice.
type Broker interface {
	// Open starts the broker for the node named node. deliver is called,
	// one message at a time and in publication order per publisher, for
	// each Envelope published by another node to a room this node has
	// subscribed to, or addressed to any connection (Target set: the
	// Hub ignores those it does not hold).
	Open(node string, deliver func(Envelope)) error

	// Subscribe and Unsubscribe tell the broker which rooms this node has
	// members in: the Hub calls Subscribe when a room's first local member
	// joins and Unsubscribe when its last one leaves. They are called with
	// the Hub's lock held, in order, so they must not block: a broker
	// records the wish and applies it from its own goroutine, and applies
	// it again after a reconnect.
	Subscribe(room string)
	Unsubscribe(room string)

	// Publish sends e to the other nodes. It must return within a bounded
	// time even when the broker's backend is down, with an error saying so.
	// For a Target no node holds, it returns an error wrapping
	// ErrNoSuchConn.
	Publish(ctx context.Context, e Envelope) error

	// AddMember and RemoveMember keep the cluster-wide presence of a room;
	// Members lists it. Members of a node that stopped without removing
	// them must expire on their own. Like Subscribe, AddMember and
	// RemoveMember are called with the Hub's lock held, in order (a
	// connection's leave never overtakes its join), so they must not
	// block: record the change and write it from the broker's goroutine.
	AddMember(ctx context.Context, room string, m Member) error
	RemoveMember(ctx context.Context, room string, m Member) error
	Members(ctx context.Context, room string) ([]Member, error)

	// Close stops the broker and releases its goroutines and connections.
	Close() error
}

// Envelope is one message between nodes.
type Envelope struct {
	Origin string              // node that published it
	Room   string              // room it is broadcast to; empty with Target
	Target string              // connection ID it is sent to (SendTo), or empty
	Except string              // connection ID that must not receive it, or empty
	Type   wsroute.MessageType // text or binary
	Data   []byte
}

// Member describes a member of a room for presence, on any node.
type Member struct {
	ConnID string            // wsroute.Conn.ID
	Node   string            // the node holding the connection
	Meta   map[string]string // what Options.Describe chose to share
}
