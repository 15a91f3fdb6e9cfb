package wsroute

import (
	"errors"
	"strconv"
)

// Errors returned by Conn methods. Test for them with [errors.Is]: the
// returned errors wrap these sentinels together with the underlying cause.
var (
	// ErrClosed means the connection is over: the peer closed it, vanished,
	// or it was closed on this side. Nothing more can be sent or received.
	ErrClosed = errors.New("wsroute: connection closed")

	// ErrWrongMessageType is returned by ReceiveText and ReceiveJSON for a
	// binary message and by ReceiveBytes for a text message. Returned from
	// a handler, it closes the connection with 1003 (unsupported data).
	ErrWrongMessageType = errors.New("wsroute: wrong message type")

	// ErrInvalidUTF8 is returned when a text message, or the reason in
	// the peer's close frame, is not valid UTF-8.
	// The protocol requires failing such a connection, so it has already
	// been closed with 1007 when the error is returned.
	ErrInvalidUTF8 = errors.New("wsroute: text message is not valid UTF-8")

	// ErrInvalidJSON is returned by ReceiveJSON when a message does not
	// decode into the given value. Returned from a handler, it closes the
	// connection with 1007 (invalid payload data).
	ErrInvalidJSON = errors.New("wsroute: message is not valid JSON for the target")

	// ErrMessageTooBig means a message was larger than Options.ReadLimit.
	// The connection has been closed with 1009 (and its socket with it:
	// the rest of the message is not waited for).
	ErrMessageTooBig = errors.New("wsroute: message exceeds the read limit (Options.ReadLimit)")

	// ErrProtocol means the peer broke the WebSocket protocol (a malformed
	// frame). The connection ends with 1002 or without a code.
	ErrProtocol = errors.New("wsroute: WebSocket protocol violation by the peer")

	// ErrNotAccepted is returned by methods that need an open WebSocket
	// when Accept has not been called yet. Call Accept first.
	ErrNotAccepted = errors.New("wsroute: connection not accepted yet; call Accept first")

	// ErrAlreadyAccepted is returned by Accept, AcceptWith and Reject when
	// the handshake has already been answered.
	ErrAlreadyAccepted = errors.New("wsroute: handshake already answered (Accept, Reject or Close was called)")

	// ErrInvalidCloseCode is returned by Close for a code that may not be
	// sent in a close frame (1004–1006, 1015, below 1000, 1016–2999, above
	// 4999). Nothing is sent and the connection stays open.
	ErrInvalidCloseCode = errors.New("wsroute: close code may not be sent; use 1000-1003, 1007-1014 or 3000-4999")

	// ErrShuttingDown is the cause when a connection is refused or ended
	// because its Tracker is shutting down.
	ErrShuttingDown = errors.New("wsroute: server shutting down")

	// ErrHandshakeTimeout means the handler did not accept or refuse the
	// connection within Options.HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("wsroute: handshake not answered within Options.HandshakeTimeout")
)

// closedError is what fmt.Errorf("%w: %w", ErrClosed, err) returns (with
// "peer closed with CODE: " in between for a peer's close), built
// without fmt: every connection ends with one, and formatting it at once
// cost a few allocations and a measurable part of a handshake's CPU.
// Its text is made when asked for.
type closedError struct {
	errs [2]error // ErrClosed and the cause
	peer bool     // the peer closed with code
	code int
}

func newClosedError(err error) *closedError {
	return &closedError{errs: [2]error{ErrClosed, err}}
}

func (e *closedError) Error() string {
	if e.peer {
		return ErrClosed.Error() + ": peer closed with " + strconv.Itoa(e.code) + ": " + e.errs[1].Error()
	}
	return ErrClosed.Error() + ": " + e.errs[1].Error()
}

func (e *closedError) Unwrap() []error { return e.errs[:] }
