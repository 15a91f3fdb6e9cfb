package redisbroker

import (
	"errors"
	"fmt"

	"github.com/nexio-go/nexio/hub"
)

var (
	// ErrUnavailable is returned (wrapped with Redis' own error) when
	// Redis could not be reached. From Publish it means the message was
	// not published: members on other nodes did not get it (the Hub
	// served its local members regardless). It wraps hub.ErrUnavailable,
	// which tells hub.New that the broker keeps trying by itself.
	ErrUnavailable = fmt.Errorf("redisbroker: Redis is unavailable: %w", hub.ErrUnavailable)

	// ErrTimeout is returned when Options.Timeout passed while Redis was
	// handling the call: a message may or may not have been published.
	ErrTimeout = errors.New("redisbroker: Redis did not answer within Options.Timeout; the message may not have been published")

	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("redisbroker: broker is closed")

	// ErrNotOpen is returned by calls made before Open (hub.New opens the
	// broker it is given).
	ErrNotOpen = errors.New("redisbroker: broker is not open")

	// ErrAlreadyOpen is returned by a second Open: a Broker serves one
	// Hub.
	ErrAlreadyOpen = errors.New("redisbroker: broker is already open (one Broker per Hub)")

	// ErrNoSuchConn is returned by Publish for a message addressed to a
	// connection (hub.SendTo) that no node holds. It wraps
	// hub.ErrNoSuchConn, so errors.Is works with either.
	ErrNoSuchConn = fmt.Errorf("redisbroker: no node holds the connection: %w", hub.ErrNoSuchConn)

	// ErrMalformed is returned when decoding a message that is not in a
	// wire format this version understands.
	ErrMalformed = errors.New("redisbroker: malformed message")
)
