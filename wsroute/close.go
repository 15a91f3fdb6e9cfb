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
	if c.hsState == hsRefused {
		return nil
	}
	if c.hsState == hsPending {
		// Browsers fail a handshake that offered subprotocols and got
		// none back (the page would see 1006, not the code): echo one.
		var p AcceptParams
		if offers := c.Subprotocols(); len(offers) > 0 && c.route.opts.pickSubprotocol(c.r) == "" {
			p.Subprotocol = offers[0]
		}
		if err := c.acceptLocked(context.Background(), p); err != nil {
			return err
		}
		c.openedToRefuse = true
	}
	c.closeWith(code, reason, refuseCloseTimeout)
	return nil
}

// closeWith runs the close handshake once, bounded by timeout: when it
// passes, the socket is closed, which unblocks coder/websocket's own
// handshake (it would otherwise wait up to 5 s + 5 s).
func (c *Conn) closeWith(code StatusCode, reason string, timeout time.Duration) {
	if !c.closing.CompareAndSwap(false, true) {
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
	c.firstClose.CompareAndSwap(0, closerServer)
	if c.sentCode.CompareAndSwap(0, int32(code)) {
		c.sentReason.Store(&reason)
	}
	kill := time.AfterFunc(timeout, func() { c.nc.Close() })
	c.ws.Close(websocket.StatusCode(code), reason)
	kill.Stop()
	c.nc.Close()
}

// Who closed first, for ConnEnd.PeerClosed. It is settled when the
// close handshake starts (this side's Close, or the peer's close frame
// read), not when the codes are stored: the peer's echo of this side's
// close frame is read as a close frame too.
const (
	closerServer = 1
	closerPeer   = 2
)

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
