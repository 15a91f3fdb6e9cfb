package wsroute

import (
	"context"
	"net/http"
	"strconv"
)

// State is where a connection is in its life. It only moves forward:
//
//	StateHandshake ──Accept──▶ StateOpen ──a side starts closing──▶ StateClosing ──socket closed──▶ StateClosed
//	      │                        └──────────────the socket is lost──────────────────────────────▶ StateClosed
//	      ├──Close before Accept (the code is carried over a WebSocket)──▶ StateClosing ──▶ StateClosed
//	      └──refused, timed out, or the request ended before Accept──────────────────────▶ StateRefused
//
// StateClosed and StateRefused are final: [Conn.Done] closes, the
// handler's ctx ends and the [Conn.OnClose] functions start exactly when
// the connection reaches one of them, and at no other time. In
// particular, the request's context ending after the handshake (a
// middleware's deadline such as chi's middleware.Timeout) does not end
// the connection: once open, it lives until one side closes it or the
// socket is lost. Before the handshake, the request's context ending
// (the client left, or a deadline passed) refuses the connection.
type State int32

// The states of a connection, in the order it passes through them.
const (
	// StateHandshake: the handler and its middleware are deciding; no
	// response has been written. Accept, Reject or Close answers it.
	StateHandshake State = iota

	// StateOpen: Accept succeeded; the WebSocket is open.
	StateOpen

	// StateClosing: a close handshake has begun (Close, or the handler
	// returned); the socket is closed within Options.CloseTimeout. A
	// connection failed on bad input (1002, 1007, 1009) passes through it at
	// once: its socket is closed right after the close frame.
	StateClosing

	// StateClosed: the WebSocket is over and its socket closed.
	StateClosed

	// StateRefused: the connection ended before a WebSocket opened: an
	// HTTP refusal was written (Reject, a handler that returned without
	// accepting, a failed Accept), the handshake timed out, or the
	// request's context ended first (the client left).
	StateRefused
)

// String returns the state's name, such as "open".
func (s State) String() string {
	switch s {
	case StateHandshake:
		return "handshake"
	case StateOpen:
		return "open"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	case StateRefused:
		return "refused"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// The state word holds the State in its low bits and facts about how the
// connection got there, so that one atomic load answers every question
// about the lifecycle.
const (
	stateMask      = 0xff
	acceptedBit    = 1 << 8 // Accept succeeded: the connection was StateOpen
	serverCloseBit = 1 << 9 // this side began the close handshake
)

// State returns where the connection is in its life. See [State].
func (c *Conn) State() State { return State(c.st.Load() & stateMask) }

// Accepted reports whether Accept or AcceptWith succeeded: it stays true
// once the connection has closed. A connection refused with a close code
// (Close before Accept) was never accepted.
func (c *Conn) Accepted() bool { return c.st.Load()&acceptedBit != 0 }

// Done returns a channel that is closed when the connection's life is
// over: it reached StateClosed (the peer closed or vanished, Close was
// called, or the handler returned) or StateRefused. It is the handler's
// ctx.Done(). A handler that only sends must keep the connection read
// (see CloseRead) for the peer's departure to be noticed.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Context returns the connection's context, the one given to the
// HandlerFunc. It carries the request's values, not its deadline, and it
// ends when Done closes: during the handshake the request's context
// ending ends it too, within 10 ms (the connection is refused; Accept
// fails at once); once the connection is open, only the connection's end
// does.
func (c *Conn) Context() context.Context { return c.ctx }

// over reports whether the connection has reached a final state.
func (s State) over() bool { return s >= StateClosed }

// newLifecycle sets up the connection's context: the request's values,
// ended by the lifecycle alone. While the handshake is pending, the
// request's context ending ends the connection too (watchRequest).
func (c *Conn) newLifecycle(r *http.Request) {
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(r.Context()))
}

// watchRequest makes the request's context ending refuse the connection
// (requestEnded), once the handshake has been pending for
// requestWatchDelay (handshakeTick): a handler that answers sooner sees a
// request that ended in Accept's check, and costs its request's context
// no watch. hsMu must be held; requestEnded, which takes it, may be
// started at once, on its own goroutine, if the request has already
// ended.
func (c *Conn) watchRequest() {
	stop := context.AfterFunc(c.r.Context(), c.requestEnded)
	c.lc.Lock()
	if State(c.st.Load()&stateMask) == StateHandshake {
		c.stopRequestWatch, stop = stop, nil
	}
	c.lc.Unlock()
	if stop != nil {
		stop() // the connection moved on meanwhile
	}
}

// unwatchRequest stops the watch on the request's context, and drops it:
// a connection may live for days, and the watch would keep its
// allocation. lc must be held.
func (c *Conn) unwatchRequest() {
	if stop := c.stopRequestWatch; stop != nil {
		stop()
		c.stopRequestWatch = nil
	}
}

// requestEnded refuses a connection whose request's context ended before
// the handshake was answered: the client left, or a middleware's
// deadline passed. After the handshake the request's context is not the
// connection's (see State).
func (c *Conn) requestEnded() {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.State() == StateHandshake && !c.accepted.Load() {
		c.requestGone = true
		c.end()
	}
}

// toOpen moves a connection from StateHandshake to StateOpen, once Accept
// has written the 101 response. It returns the OnAccept functions to
// run, and false if the connection left StateHandshake meanwhile (a
// concurrent Close, or the socket was lost).
func (c *Conn) toOpen() ([]func(), bool) {
	c.lc.Lock()
	defer c.lc.Unlock()
	if c.State() != StateHandshake {
		return nil, false
	}
	c.st.Store(int32(StateOpen) | acceptedBit)
	hs := c.acceptHooks
	c.acceptHooks = nil
	c.unwatchRequest()
	return hs, true
}

// toClosing moves an open connection (or one opened only to carry a
// close code) to StateClosing, recording that this side closes first.
// It reports false if a close has already begun or the connection is
// over: the caller then has nothing to do.
func (c *Conn) toClosing() bool {
	c.lc.Lock()
	defer c.lc.Unlock()
	st := c.st.Load()
	switch State(st & stateMask) {
	case StateOpen:
	case StateHandshake:
		if !c.accepted.Load() {
			return false
		}
	default:
		return false
	}
	c.st.Store(st&^stateMask | int32(StateClosing) | serverCloseBit)
	return true
}

// end moves the connection to its final state, StateClosed if a
// WebSocket was opened, else StateRefused, and does what that means, once:
// Done closes, the keepalive stops and the OnClose functions start. It
// runs when the socket closes (netConn.Close), when the handshake is
// refused or abandoned, and when the handler returns.
func (c *Conn) end() {
	c.lc.Lock()
	st := c.st.Load()
	if State(st & stateMask).over() {
		c.lc.Unlock()
		return
	}
	final := StateRefused
	if c.accepted.Load() {
		final = StateClosed
	}
	c.st.Store(st&^stateMask | int32(final))
	fns := c.closeFns
	c.closeFns = nil
	c.acceptHooks = nil // they can no longer run
	c.unwatchRequest()
	stopPing := c.pingStop
	c.pingStop = nil
	c.lc.Unlock()

	c.cancel()
	if stopPing != nil {
		stopPing()
	}
	if c.accepted.Load() {
		c.stopKeepalive()
	}
	for _, f := range fns {
		go f()
	}
}

// OnClose registers f to run, in its own goroutine, when the connection
// reaches StateClosed or StateRefused: it was closed by either side,
// refused, or its handler returned. It may be called in any state; if
// the connection is already over, f runs at once (in its own goroutine).
// It is what context.AfterFunc on Context does, for a fraction of the
// memory, which counts for a hub holding every connection of a server.
func (c *Conn) OnClose(f func()) {
	c.lc.Lock()
	if c.State().over() {
		c.lc.Unlock()
		go f()
		return
	}
	c.closeFns = append(c.closeFns, f)
	c.lc.Unlock()
}

// OnAccept registers fn to run when Accept or AcceptWith succeeds: in
// the goroutine that called it, after the 101 response was written and
// before Accept returns. It may be called in any state, from any
// goroutine: if the connection was already accepted, fn runs at once, in
// its own goroutine (the caller may hold locks fn takes, as the hub
// does); if it can no longer be accepted (refused, closed before Accept,
// or Close refused it with a code), fn never runs. So fn runs at most
// once, and exactly once for an accepted connection.
func (c *Conn) OnAccept(fn func()) {
	c.lc.Lock()
	st := c.st.Load()
	switch {
	case st&acceptedBit != 0:
		c.lc.Unlock()
		go fn()
		return
	case State(st&stateMask) != StateHandshake:
		c.lc.Unlock()
		return
	}
	c.acceptHooks = append(c.acceptHooks, fn)
	c.lc.Unlock()
}

// ownDone reports whether ctx ends exactly when the connection ends (the
// handler's context or a value context derived from it). Calls with such
// a context need not arm a per-call timer: the connection's end already
// unblocks them.
func (c *Conn) ownDone(ctx context.Context) bool {
	if ctx == c.ctx {
		// The handler's own: asking for its Done channel would make
		// one that nothing else may need.
		return true
	}
	d := ctx.Done()
	return d == nil || d == c.ctx.Done()
}
