package wstest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

var (
	// ErrTimeout is returned by Receive and Expect calls when nothing
	// arrived within Conn.Timeout. The connection stays open.
	ErrTimeout = errors.New("wstest: nothing arrived within the timeout")

	// ErrUnexpected is wrapped by the errors of Expect calls and ReadClose
	// when what arrived is not what was expected.
	ErrUnexpected = errors.New("wstest: unexpected")

	// ErrClosed is wrapped by the errors of calls made after the
	// connection ended. wsroute.CloseStatus reads the code the server
	// closed with from such an error.
	ErrClosed = errors.New("wstest: connection closed")
)

// RefusedError is returned by Dial when the server answered the
// handshake with a plain HTTP response instead of switching protocols:
// wsroute.Conn.Reject, 426 for a request that is not an upgrade, 403 for
// a foreign Origin, or any handler that is not a WebSocket route.
type RefusedError struct {
	StatusCode int         // the HTTP status, such as 401 or 429
	Header     http.Header // the response headers (Retry-After, …)
	Body       string      // the start of the response body (up to 1 KiB)
}

// Error describes the refusal with its status and body.
func (e *RefusedError) Error() string {
	body := strings.TrimSpace(e.Body)
	if body == "" {
		return fmt.Sprintf("wstest: handshake refused with HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("wstest: handshake refused with HTTP %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), body)
}

// RefusedStatus returns the HTTP status of a refused handshake, or 0 if
// err is not a *RefusedError.
func RefusedStatus(err error) int {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
