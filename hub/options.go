package hub

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// Policy says what happens when a member's queue is full: the member is
// reading slower than the room is talking.
type Policy int

const (
	// Disconnect closes the member with 1008 "slow consumer". Members
	// that stay get every message; the slow one can reconnect.
	Disconnect Policy = iota
	// DropNewest drops the message that did not fit.
	DropNewest
	// DropOldest drops the oldest queued message to make room.
	DropOldest
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Disconnect:
		return "disconnect"
	case DropNewest:
		return "drop-newest"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Options configures a Hub. The zero value and nil mean the defaults.
type Options struct {
	// QueueMessages bounds each member's queue of messages not yet handed
	// to its socket. Defaults to 256.
	QueueMessages int

	// QueueBytes bounds the payload bytes in each member's queue. A single
	// message larger than this is still queued when the queue is empty.
	// Defaults to 1 MiB.
	QueueBytes int

	// SlowConsumer is what happens when a queue is full.
	// Defaults to Disconnect.
	SlowConsumer Policy

	// Broker carries rooms across processes. Defaults to nil: rooms are
	// local to this Hub.
	Broker Broker

	// Node names this process to the Broker; it must be unique in the
	// cluster. Defaults to a random ID.
	Node string

	// Describe returns what presence lists show of a member (for example
	// its user name), on every node. Defaults to nil: members are known by
	// connection ID only.
	Describe func(c *wsroute.Conn) map[string]string

	// OnJoin and OnLeave, when set, are called after a connection of this
	// node joined or left a room (leaving includes the connection ending).
	// They run on the goroutine that caused the change and must not block.
	// Defaults to nil.
	OnJoin, OnLeave func(room string, c *wsroute.Conn)

	// OnEnqueue, when set, is called each time a message is put in a
	// member's queue, with the number of messages queued for that member
	// after it: a member whose queue keeps growing is reading slower than
	// its rooms talk, before the SlowConsumer policy has to act. It runs
	// once per member per message, with the member's lock held: on the
	// broadcasting goroutine (the hub's lock held too), or on the
	// member's writer for a message of a JoinFrom replay, or one held
	// behind it, as it moves into the queue. So it must be cheap and must
	// not call the Hub (a histogram observation, as wsmw/wsmetrics does).
	// Defaults to nil.
	OnEnqueue func(queued int)

	// History keeps each room's recent messages, so that a member that
	// blinks can get what it missed (JoinFrom) and a late joiner can read
	// the past (Hub.History). With a Broker, the broker keeps it and must
	// implement HistoryBroker. Defaults to the zero History: off, nothing
	// kept, and broadcasts cost what they cost without it.
	History History

	// Stamp, when set, builds what members receive from what was
	// published, knowing the message's Position: typically it adds the
	// position to the payload so that clients can resume from it. It runs
	// once per message (not once per member) and again for each message
	// replayed from a broker's store, so it must be a pure function of its
	// arguments: a replayed message then reaches its client byte-identical
	// to its live delivery. It runs with the room's order held (the
	// room's next message waits for it): it must be cheap and must not
	// call the Hub. It is used only with History on. Defaults to nil: data
	// unchanged.
	Stamp func(room string, pos Position, typ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte)

	// Seam, when set, builds one more message that JoinFrom hands the
	// joining member right after its replay and before any live message
	// of the room, so that a client learns where the replay ends (the
	// demo's "sync" frame). r is what JoinFrom returns, except that
	// r.Position is the position at the seam itself: the last message
	// before the live ones that follow (the room's head when nothing was
	// replayed), so that the next live message is r.Position's offset
	// plus one. It runs once per JoinFrom, with the room's order held:
	// it must be cheap and must not call the Hub. Defaults to nil:
	// nothing is added.
	Seam func(room string, c *wsroute.Conn, r Recovery) (wsroute.MessageType, []byte)

	// OnPresence, when set, is called for each member joining or leaving
	// a room: this node's members (once accepted, never for a connection
	// refused before its handshake completed) and, with a Broker, other
	// nodes' members as their nodes report them, including the leave of
	// a member whose node died and whose presence expired. For one
	// connection of this node, events come in the order they happened (a
	// join before its leave); other nodes' events come in the broker's
	// order, on the broker's delivery goroutine. It must not block.
	// Defaults to nil.
	OnPresence func(room string, e PresenceEvent)

	// Logger receives the hub's logs: slow consumers, write failures,
	// broker errors. Defaults to slog.Default().
	Logger *slog.Logger
}

const (
	defaultQueueMessages = 256
	defaultQueueBytes    = 1 << 20
	defaultHistoryTTL    = 10 * time.Minute
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.QueueMessages < 0 || c.QueueBytes < 0 {
		panic("hub: Options.QueueMessages and Options.QueueBytes must not be negative")
	}
	if c.SlowConsumer < Disconnect || c.SlowConsumer > DropOldest {
		panic(fmt.Sprintf("hub: Options.SlowConsumer: unknown policy %d", int(c.SlowConsumer)))
	}
	if c.History.Size < 0 {
		panic("hub: Options.History.Size must not be negative (0 turns history off)")
	}
	if c.History.Size == 0 && c.History.TTL != 0 {
		panic("hub: Options.History.TTL is set but History.Size is 0, so no history would be kept: set Size (messages kept per room)")
	}
	if c.History.Size > 0 && c.History.TTL == 0 {
		c.History.TTL = defaultHistoryTTL
	}
	if c.History.Size > 0 && c.Broker != nil {
		if _, ok := c.Broker.(HistoryBroker); !ok {
			panic(fmt.Sprintf("hub: Options.History is set but Options.Broker (%T) does not keep history: "+
				"with a broker, history lives in the broker's store; use a broker that implements hub.HistoryBroker "+
				"(redisbroker, natsbroker) or leave Options.History zero", c.Broker))
		}
	}
	if c.QueueMessages == 0 {
		c.QueueMessages = defaultQueueMessages
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = defaultQueueBytes
	}
	if c.Node == "" {
		var b [9]byte
		rand.Read(b[:])
		c.Node = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
