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
	// Open starts the broker for the node named node. If the backend
	// cannot be reached yet, Open returns an error wrapping
	// ErrUnavailable and keeps trying in the background; any other error
	// means the broker can never serve this Hub, and hub.New panics with
	// it. deliver is called,
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
	// them must expire on their own, within 10 seconds. Each change also
	// reaches every other node with members in the room as an Envelope
	// with Presence set (Origin: the node that changed), and every node
	// delivers a leave for each member it sees expire, so that presence
	// lists kept from events agree with Members. A change of another
	// instance under this node's own name (its predecessor, when a node
	// restarts under the same name) is delivered with an empty Origin:
	// the Hub ignores presence events whose Origin is its own node. Like Subscribe, AddMember and
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

	// Position is where the store placed a message of a room with
	// history (see HistoryBroker); zero for every other message.
	Position Position

	// Presence, when not nil, makes the envelope a presence change of
	// Room instead of a message: Type, Data and Position are unused.
	Presence *PresenceEvent
}

// PresenceEvent is a member joining or leaving a room, on any node.
type PresenceEvent struct {
	Joined bool // true for a join, false for a leave (or an expiry)
	Member Member
}

// HistoryBroker is a Broker that also keeps the history of rooms. A Hub
// with both Options.History and Options.Broker requires its broker to
// implement it: with a broker, the broker's store is the one place where
// a room's offsets are assigned, so that every node and every member sees
// the same Position for the same message.
//
// For a room with history, delivery differs from Broker.Publish in two
// ways. First, Append publishes to every node, the appending one
// included: a node delivers its own appended messages to its members when
// they come back from the broker, so that every node delivers a room's
// messages in one order, the store's. Second, a node's deliver sees a
// room's messages in Position order with no gap and no duplicate: a broker
// that notices a room's offsets jump (a pub/sub message lost while its
// subscription reconnected) fetches the missing ones from its store and
// delivers them before later ones. A store that lost a room's history
// (restarted without persistence) starts a new epoch for it; the first
// message of a new epoch that a node delivers tells the Hub that what came
// before is lost.
type HistoryBroker interface {
	Broker

	// Append stores e (a message of e.Room; Target is empty) in the
	// room's history, kept as h says (trimmed to h.Size messages, expiring
	// h.TTL after the room's last message), assigns its Position
	// atomically with the append, and publishes it with that Position to
	// every node subscribed to the room, this one included. It returns
	// the Position. Like Publish it returns within a bounded time, with an
	// error, when the store is down; the message is then not stored and
	// not delivered anywhere.
	Append(ctx context.Context, e Envelope, h History) (Position, error)

	// History returns the kept messages of room after since, oldest
	// first, at most limit of them (limit <= 0: all that are kept), and
	// the room's current position: its epoch and the offset of its newest
	// message (offset 0 for a room with no messages in this epoch). A zero
	// since means from the oldest kept message. History does not judge
	// whether since can be honoured: when since is of another epoch, or
	// older than the oldest kept message, it returns what it has and the
	// Hub sees that the first entry does not follow since. The Hub may
	// call History from within deliver (to fill a gap it noticed before
	// delivering the next message), so History must not wait for
	// deliver to return.
	History(ctx context.Context, room string, since Position, limit int) ([]Entry, Position, error)
}

// Member describes a member of a room for presence, on any node.
type Member struct {
	ConnID string            // wsroute.Conn.ID
	Node   string            // the node holding the connection
	Meta   map[string]string // what Options.Describe chose to share
}
