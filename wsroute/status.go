package wsroute

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// StatusCode is a WebSocket close code (RFC 6455, section 7.4).
// Application codes live in 4000–4999; libraries and frameworks use
// 3000–3999.
type StatusCode int

// Close codes defined by the protocol. The names are those of
// github.com/coder/websocket, so code written against either reads the same.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusReserved                StatusCode = 1004 // may not be sent
	StatusNoStatusRcvd            StatusCode = 1005 // may not be sent
	StatusAbnormalClosure         StatusCode = 1006 // may not be sent
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015 // may not be sent
)

// String returns the code's name, or its number for codes without one.
func (s StatusCode) String() string {
	if s >= 1000 && s <= 1015 {
		return websocket.StatusCode(s).String()
	}
	return fmt.Sprintf("StatusCode(%d)", int(s))
}

// Sendable reports whether s may be sent in a close frame.
func (s StatusCode) Sendable() bool {
	switch {
	case s >= 1000 && s <= 1003, s >= 1007 && s <= 1014, s >= 3000 && s <= 4999:
		return true
	}
	return false
}

// MaxCloseReason is the longest close reason, in bytes, that fits in a
// close frame. Close cuts longer reasons at a UTF-8 boundary.
const MaxCloseReason = 123

// CloseError ends a connection with a chosen code and reason. Return one
// (or an error wrapping one) from a HandlerFunc and the client sees that
// code and reason.
type CloseError struct {
	Code   StatusCode
	Reason string
}

// Error returns a description with the code and reason.
func (e *CloseError) Error() string {
	return fmt.Sprintf("wsroute: close %d %q", int(e.Code), e.Reason)
}

// CloseStatus returns the close code carried by err: the code the peer
// sent when a Receive or Send failed because the peer closed the
// connection, or the Code of a *CloseError. It returns -1 if err carries
// no code (nil, or a connection that vanished without a close frame).
func CloseStatus(err error) StatusCode {
	if err == nil {
		return -1
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	if c := websocket.CloseStatus(err); c != -1 {
		return StatusCode(c)
	}
	return -1
}

// truncateReason cuts reason to at most MaxCloseReason bytes without
// splitting a UTF-8 sequence. Invalid UTF-8 is replaced, since the peer
// must fail a close frame whose reason is not valid UTF-8.
func truncateReason(reason string) string {
	if !utf8.ValidString(reason) {
		reason = toValidUTF8(reason)
	}
	if len(reason) <= MaxCloseReason {
		return reason
	}
	cut := MaxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s))
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return string(b)
}
