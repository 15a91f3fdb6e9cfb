package wsmw

import (
	"errors"
	"fmt"
)

// Errors returned up the middleware chain when a built-in middleware
// refuses a connection, after it has refused it (with a close code or an
// HTTP status). Outer middleware, such as Logger, see why; wsroute logs
// such refusals at debug level only. Test for them with [errors.Is].
var (
	// ErrUnauthorized: Auth found no token, or the token was not valid.
	ErrUnauthorized = errors.New("wsmw: unauthorized")

	// ErrRateLimited: RateLimit refused a connection attempt over the
	// client's rate.
	ErrRateLimited = errors.New("wsmw: connection rate limit exceeded")

	// ErrTooManyConns: MaxConns refused a connection over its total or
	// per-client cap.
	ErrTooManyConns = errors.New("wsmw: too many connections")

	// ErrMessageRate: MessageRate closed a connection whose client sent
	// messages faster than allowed. Receive returns an error wrapping it
	// (and wsroute.ErrClosed).
	ErrMessageRate = errors.New("wsmw: message rate exceeded")
)

// PanicError is what Recover returns for a panic below it. It does not
// unwrap to the panic value, even an error: a panic always ends the
// connection as an internal error (1011), never as, say, a normal close.
type PanicError struct {
	// Value is the value given to panic.
	Value any
	// Stack is the panicking goroutine's stack trace.
	Stack []byte
}

// Error returns the panic value followed by the stack, so that whoever
// logs the error (wsroute does, at error level) logs where it happened.
func (e *PanicError) Error() string {
	return fmt.Sprintf("wsmw: recovered panic: %v\n\n%s", e.Value, e.Stack)
}
