package wsroute

import (
	"context"
	"fmt"
	"time"

	"github.com/coder/websocket"
)

// Close closes the connection with code and reason.
//
// Before Accept it accepts and immediately closes, so that a browser
// client sees the code (browsers cannot read an HTTP refusal); that close
// handshake is bounded to about a second.
//
// After Accept it performs the close handshake and returns within
// Options.CloseTimeout whatever the peer does, then drops the TCP
// connection. It is idempotent: a second call, or a call after the peer
// left, returns nil. A reason longer than MaxCloseReason bytes is cut at
// a UTF-8 boundary. A code that may not be sent (see StatusCode.Sendable)
// returns ErrInvalidCloseCode; nothing is sent and the connection stays
// open.
func (c *Conn) Close(code StatusCode, reason string) error {
	if !code.Sendable() {
		return fmt.Errorf("%w: got %d", ErrInvalidCloseCode, int(code))
	}
	if c.accepted.Load() {
		c.closeWith(code, reason, c.route.opts.CloseTimeout)
		return nil
	}
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	switch {
	case c.accepted.Load():
		// Accept finished while this call waited for it.
		c.closeWith(code, reason, c.route.opts.CloseTimeout)
		return nil
	case c.State() != StateHandshake:
		return nil // refused, or over
	}
	// Browsers fail a handshake that offered subprotocols and got none
	// back (the page would see 1006, not the code): echo one.
	var p AcceptParams
	if offers := c.Subprotocols(); len(offers) > 0 && c.route.opts.pickSubprotocol(c.r) == "" {
		p.Subprotocol = offers[0]
	}
	if err := c.acceptLocked(context.Background(), p); err != nil {
		return err
	}
	c.closeWith(code, reason, refuseCloseTimeout)
	return nil
}

// closeWith runs the close handshake once, bounded by timeout: when it
// passes, the socket is closed, which unblocks coder/websocket's own
// handshake (it would otherwise wait up to 5 s + 5 s).
func (c *Conn) closeWith(code StatusCode, reason string, timeout time.Duration) {
	c.shutdown(code, reason, timeout, false)
}

// fail fails the connection (RFC 6455, section 7.1.7) after the peer
// broke the protocol or sent text that is not UTF-8: the close frame is
// sent, unless coder/websocket has sent one already, and the TCP
// connection is dropped right after, rather than held open waiting for
// the answer of a peer that has shown it does not follow the protocol.
func (c *Conn) fail(code StatusCode, reason string) {
	c.shutdown(code, reason, c.route.opts.CloseTimeout, true)
}

// shutdown is closeWith and fail: it moves the connection to
// StateClosing, sends the close frame and closes the socket, which moves
// it to StateClosed.
func (c *Conn) shutdown(code StatusCode, reason string, timeout time.Duration, failing bool) {
	if !c.toClosing() {
		return
	}
	c.stopKeepalive()
	if p := c.readFailed.Load(); p != nil && c.peerCode.Load() == 0 && isDisconnect(*p) {
		// The peer vanished: there is nobody to tell.
		c.nc.Close()
		c.ws.CloseNow()
		return
	}
	reason = truncateReason(reason)
	if c.sentCode.CompareAndSwap(0, int32(code)) {
		c.sentReason.Store(&reason)
	}
	if failing {
		// coder/websocket's Close writes the close frame (if it has not
		// yet), then reads until the peer's answers: a read deadline in
		// the past ends that wait at once, and Close then closes the
		// socket. Writes are not affected.
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	kill := time.AfterFunc(timeout, func() { c.nc.Close() })
	c.ws.Close(websocket.StatusCode(code), reason)
	kill.Stop()
	c.nc.Close()
}

// closedCode returns the code the connection ended with, as far as this
// side knows: the peer's code if the peer closed first, the code sent,
// or 1006 if neither.
func (c *Conn) closedCode() StatusCode {
	if p := c.peerCode.Load(); p != 0 {
		return StatusCode(p)
	}
	if s := c.sentCode.Load(); s != 0 {
		return StatusCode(s)
	}
	return StatusAbnormalClosure
}
