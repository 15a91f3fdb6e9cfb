package hub

import "errors"

var (
	// ErrClosed is returned by Join, Broadcast and SendTo after Shutdown.
	ErrClosed = errors.New("hub: hub is shut down")

	// ErrConnClosed is returned by Join for a connection that has ended
	// or was never accepted: it could never receive anything.
	ErrConnClosed = errors.New("hub: connection is not open (not accepted yet, or already ended)")

	// ErrNoSuchConn is returned by SendTo when no node holds the
	// connection. Without a Broker only this node is asked.
	ErrNoSuchConn = errors.New("hub: no connection with that ID")

	// ErrPublish wraps a Broker's failure to publish. Local members were
	// served; members on other nodes were not.
	ErrPublish = errors.New("hub: publishing to other nodes failed; local members were served")

	// ErrNotStored wraps a HistoryBroker's failure to append a message of
	// a room with history: the message was not stored and was delivered
	// to no one, on any node. The caller may retry.
	ErrNotStored = errors.New("hub: the broker could not store the message; no member received it")

	// ErrAlreadyMember is returned by JoinFrom for a connection that is
	// already a member of the room: what it missed is already queued for
	// it, and a replay would repeat messages. Leave the room first, or
	// (better) resume on a new connection.
	ErrAlreadyMember = errors.New("hub: JoinFrom: the connection is already a member of the room")

	// ErrUnavailable is what a Broker's errors wrap when its backend
	// cannot be reached for now. From Open it means the broker keeps
	// trying in the background: New logs it at ERROR and goes on with
	// local rooms until the broker connects. Any other error from Open
	// means the broker can never serve this Hub (opened twice, closed,
	// misconfigured), and New panics with it.
	ErrUnavailable = errors.New("hub: broker backend unavailable")
)
