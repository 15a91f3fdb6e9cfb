package wsroute

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/coder/websocket"
)

// closedError must read and unwrap exactly as the fmt.Errorf it stands
// for.
func TestClosedErrorIsTheFmtError(t *testing.T) {
	peer := websocket.CloseError{Code: websocket.StatusGoingAway, Reason: "bye"}
	for _, tc := range []struct {
		got, want error
		cause     error
	}{
		{newClosedError(io.EOF), fmt.Errorf("%w: %w", ErrClosed, io.EOF), io.EOF},
		{peerClosed(peer, 1001), fmt.Errorf("%w: peer closed with %d: %w", ErrClosed, 1001, peer), peer},
	} {
		if tc.got.Error() != tc.want.Error() {
			t.Errorf("Error() = %q, want %q", tc.got.Error(), tc.want.Error())
		}
		if !errors.Is(tc.got, ErrClosed) || !errors.Is(tc.got, tc.cause) {
			t.Errorf("%q does not wrap both ErrClosed and %v", tc.got, tc.cause)
		}
	}
	var ce websocket.CloseError
	if !errors.As(peerClosed(peer, 1001), &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("errors.As did not find the peer's CloseError: %+v", ce)
	}
}

func peerClosed(err error, code int) *closedError {
	e := newClosedError(err)
	e.peer, e.code = true, code
	return e
}
