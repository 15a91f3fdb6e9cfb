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
)
