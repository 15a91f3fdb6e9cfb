package natsbroker

import (
	"errors"
	"fmt"

	"github.com/nexio-go/nexio/hub"
)

var (
	// ErrUnavailable is returned (wrapped with the NATS client's own
	// error) when NATS could not be reached. From Publish and Append it
	// means the message was not sent: members on other nodes did not get
	// it (the Hub served its local members regardless).
	ErrUnavailable = errors.New("natsbroker: NATS is unavailable")

	// ErrTimeout is returned when Options.Timeout passed while NATS was
	// handling the call: a message may or may not have been published.
	ErrTimeout = errors.New("natsbroker: NATS did not answer within Options.Timeout (a message being sent may or may not have been published)")

	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("natsbroker: broker is closed")

	// ErrNotOpen is returned by calls made before Open (hub.New opens the
	// broker it is given).
	ErrNotOpen = errors.New("natsbroker: broker is not open")

	// ErrAlreadyOpen is returned by a second Open: a Broker serves one
	// Hub.
	ErrAlreadyOpen = errors.New("natsbroker: broker is already open (one Broker per Hub)")

	// ErrNoSuchConn is returned by Publish for a message addressed to a
	// connection (hub.SendTo) that no node holds. It wraps
	// hub.ErrNoSuchConn, so errors.Is works with either.
	ErrNoSuchConn = fmt.Errorf("natsbroker: no node holds the connection: %w", hub.ErrNoSuchConn)

	// ErrMalformed is returned when decoding a message that is not in a
	// wire format this version understands.
	ErrMalformed = errors.New("natsbroker: malformed message")
)
