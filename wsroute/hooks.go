package wsroute

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Hooks let middleware observe a connection without wrapping it: a
// middleware runs before the handshake, registers what it wants to hear
// about, and calls next. They are how package wsmw logs the accept and
// the close code (OnAccept, OnEnd) and limits message rates (OnReceive).

// ConnEnd describes how a connection ended; OnEnd functions receive it.
type ConnEnd struct {
	// Accepted reports whether the handler accepted the connection:
	// Accept or AcceptWith succeeded. A connection refused with a close
	// code (Close before Accept) was opened only to carry that code: it
	// is not Accepted, but its Status is 101 and its Code is set.
	Accepted bool

	// Status is the HTTP status of the handshake response: 101 when a
	// WebSocket was opened, otherwise the refusal's (the status given to
	// Reject, 403 when the handler neither accepted nor refused, 500 when
	// it failed, 503 when the handshake timed out).
	Status int

	// Code and Reason are the close code and reason the connection ended
	// with: the peer's if it closed first, else those this side sent.
	// Code is StatusAbnormalClosure (1006) when no close frame was
	// exchanged, and 0 when no WebSocket was opened.
	Code   StatusCode
	Reason string

	// PeerClosed reports whether the peer ended an accepted connection:
	// its close frame came before this side sent one, or it went away
	// without one (Code is then 1006). It is false when this side closed
	// first (the handler returned, Close was called, a middleware or the
	// hub closed it) and when no WebSocket was opened.
	PeerClosed bool

	// Err is what the handler returned, or the panic it raised.
	Err error
}

// OnReceive registers fn to run for each data message received, after it
// is read and before the Receive call returns it, with its type and
// size. If fn returns an error the message is dropped, the connection is
// closed (with the code and reason of a *CloseError in the error, else
// 1008 "policy violation"), and the Receive call returns an error
// wrapping both ErrClosed and fn's error. fn runs on the reading
// goroutine for every message: it must be cheap, and should not allocate.
func (c *Conn) OnReceive(fn func(typ MessageType, size int) error) {
	c.hookMu.Lock()
	defer c.hookMu.Unlock()
	var hs []func(MessageType, int) error
	if p := c.recvHooks.Load(); p != nil {
		hs = append(hs, *p...)
	}
	hs = append(hs, fn)
	c.recvHooks.Store(&hs)
}

// OnEnd registers fn to run once the connection is over: after the close
// handshake, or after an HTTP refusal was written, when the handler and
// its middleware have returned. Functions run in the handler's
// goroutine, the last registered first (like deferred calls); a panic in
// one is logged and does not stop the others. Registered after that
// moment (from a goroutine that outlived the handler), fn runs at once in
// the caller's goroutine with the same ConnEnd.
func (c *Conn) OnEnd(fn func(ConnEnd)) {
	c.hookMu.Lock()
	if e := c.endRec; e != nil {
		c.hookMu.Unlock()
		c.runEndHook(fn, *e)
		return
	}
	c.endHooks = append(c.endHooks, fn)
	c.hookMu.Unlock()
}

// runReceiveHooks runs the OnReceive functions for one message; a
// refusal closes the connection and becomes the Receive error.
func (c *Conn) runReceiveHooks(hs []func(MessageType, int) error, typ MessageType, size int) error {
	for _, fn := range hs {
		herr := fn(typ, size)
		if herr == nil {
			continue
		}
		code, reason := StatusPolicyViolation, "policy violation"
		var ce *CloseError
		if errors.As(herr, &ce) && ce.Code.Sendable() {
			code, reason = ce.Code, ce.Reason
		}
		err := fmt.Errorf("%w: %w", ErrClosed, herr)
		c.readFailed.CompareAndSwap(nil, &err)
		c.Close(code, reason)
		return err
	}
	return nil
}

// runEndHooks tells the OnEnd functions how the connection ended. It
// runs once, in the handler's goroutine, after the connection reached a
// final State.
func (c *Conn) runEndHooks(err error) {
	st := c.st.Load()
	c.hsMu.Lock()
	e := &ConnEnd{
		Accepted: st&acceptedBit != 0,
		Status:   c.hsStatus,
		Err:      err,
	}
	c.hsMu.Unlock()
	if c.accepted.Load() {
		e.Code = c.closedCode()
		e.Reason = c.closedReason()
		e.PeerClosed = st&serverCloseBit == 0
	}
	c.hookMu.Lock()
	hs := c.endHooks
	c.endHooks = nil
	c.endRec = e
	c.hookMu.Unlock()
	for i := len(hs) - 1; i >= 0; i-- {
		c.runEndHook(hs[i], *e)
	}
}

func (c *Conn) runEndHook(fn func(ConnEnd), e ConnEnd) {
	defer func() {
		if p := recover(); p != nil {
			c.route.opts.logger().Error("wsroute: OnEnd function panicked",
				c.attrs(slog.Any("panic", p), slog.String("stack", string(debug.Stack())))...)
		}
	}()
	fn(e)
}

// closedReason returns the reason that goes with closedCode.
func (c *Conn) closedReason() string {
	var p *string
	if c.peerCode.Load() != 0 {
		p = c.peerReason.Load()
	} else if c.sentCode.Load() != 0 {
		p = c.sentReason.Load()
	}
	if p == nil {
		return ""
	}
	return *p
}
