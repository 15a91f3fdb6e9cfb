package wsroute

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// MessageFunc handles one message of a detached connection (see
// [Conn.Detach]). ctx carries the values of the handler's context and
// ends when the connection ends. What it returns decides the end of the
// connection as a handler's result does (see the package documentation):
// nil keeps the connection open for the next message, any error closes
// it with the code that error maps to.
type MessageFunc func(ctx context.Context, c *Conn, m Message) error

// errDetachedLate is what Detach returns once the handler has returned.
var errDetachedLate = errors.New("wsroute: Detach called after the handler returned; " +
	"call it from the handler, as its last act (return c.Detach(ctx, fn))")

// detached is a connection's hand-over to wsroute: the message function,
// and the context it receives. It is that context: the connection's
// lifetime with the handler's values, so that a middleware's deadline or
// cancellation, which ended with the handler, does not end it.
type detached struct {
	context.Context                 // the connection's: Done, Err, Deadline
	values          context.Context // the handler's ctx, for Value
	fn              MessageFunc
}

func (d *detached) Value(key any) any { return d.values.Value(key) }

// Detach hands the connection over to wsroute, so that the handler can
// return while the connection stays open: the handler's goroutine and
// its stack, grown deep by net/http and the middleware, are released,
// which is most of what an idle connection costs. Call it after Accept,
// as the handler's last act:
//
//	if err := c.Accept(ctx); err != nil {
//		return err
//	}
//	if err := h.Join(c, room); err != nil {
//		return err
//	}
//	return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
//		return h.Broadcast(ctx, room, m.Type, m.Data, hub.Except(c))
//	})
//
// When the handler returns nil, one goroutine, started on a fresh stack,
// reads the connection and calls fn for each data message, one at a
// time, in order; m.Data is fn's to keep. Everything else behaves as for
// a connection its handler holds in a Receive loop that returns fn's
// error: pings are answered and sent (Options.PingInterval), a dead peer
// is closed, what fn returns (or a panic in it) becomes the close code,
// the Options.Tracker counts the connection and Tracker.Shutdown waits
// for it, the OnEnd functions (and so the middleware's logs, metrics and
// limits) run when it ends, and a hub's member leaves its rooms then. A
// nil fn makes a connection that only sends (as with CloseRead): a data
// message closes it with 1008.
//
// Between messages the reader waits for the peer a few frames deep
// (coder.go, assumption 12), within a new goroutine's 2 KiB stack.
// Handling a message grows that stack, as a handler's would, and the
// next messages reuse it; once only control frames come (the keepalive's
// pong, within Options.PingInterval), the wait moves to a fresh
// goroutine, so an idle connection is back to 2 KiB.
//
// If the handler returns an error after Detach, or panics, the
// connection ends with it, as without Detach, and fn never runs. Detach
// returns an error, and changes nothing, before Accept, after CloseRead,
// when called twice, or once the handler has returned; it returns one
// wrapping ErrClosed if the connection is already over. After Detach the
// handler must not Receive: the connection's messages are fn's.
//
// A Close from another goroutine (Tracker.Shutdown, a hub dropping a
// slow member) may come at any moment, even as the handler returns:
// coder/websocket's close handshake and the reader take turns on the
// socket (TestDetachedCloseFromElsewhere).
func (c *Conn) Detach(ctx context.Context, fn MessageFunc) error {
	if !c.accepted.Load() {
		return fmt.Errorf("%w: Detach before Accept", ErrNotAccepted)
	}
	d := &detached{Context: c.ctx, values: ctx, fn: fn}
	c.lc.Lock()
	defer c.lc.Unlock()
	switch {
	case c.handlerDone:
		return errDetachedLate
	case c.detach != nil:
		return errors.New("wsroute: Detach called twice on one connection")
	case c.State().over():
		return fmt.Errorf("%w: the connection ended before Detach", ErrClosed)
	case !c.closeRead.CompareAndSwap(false, true):
		return errors.New("wsroute: Detach after CloseRead: the connection already has a reader")
	}
	c.detach = d
	return nil
}

// Detached reports whether Detach succeeded: the connection outlives its
// handler (unless the handler then failed). A middleware that holds
// something for the connection's life releases it when next returns, or,
// when the connection is Detached and next returned nil, in an OnEnd
// function, as wsmw.MaxConns does.
func (c *Conn) Detached() bool {
	c.lc.Lock()
	defer c.lc.Unlock()
	return c.detach != nil
}

// handOver is called when the handler has returned: it reports whether
// the connection was detached, and then starts its reader. A handler
// that failed after Detach ends its connection as usual.
func (c *Conn) handOver(err error, stack []byte) bool {
	c.lc.Lock()
	c.handlerDone = true
	d := c.detach
	// A close already begun (another goroutine's Close) reads the
	// socket through coder/websocket: no reader of ours may start
	// beside it, and the connection ends as a returning handler's.
	closing := c.State() >= StateClosing
	c.lc.Unlock()
	if d == nil || err != nil || stack != nil || closing {
		return false
	}
	// The handshake's ResponseWriter keeps net/http's connection and
	// response alive; the handler was the last to need them.
	c.hsMu.Lock()
	c.w = nil
	c.hsMu.Unlock()
	c.guard.detached.Store(true)
	go c.readDetached(d, false)
	return true
}

// readDetached reads each message of a detached connection and hands it
// to fn, in order, waiting for the peer between messages. Its goroutine
// is wsroute's, one per detached connection at any time: when fn fails
// or the connection ends, it ends the connection as a returning handler
// would, and returns; when only control frames came, it hands the wait
// to a new goroutine and returns. Messages do not start a new goroutine:
// each would start on 2 KiB and grow it anew (an echo cost ~15% more
// CPU), and the garbage collector never shrinks a stack back to 2 KiB (it
// needs less than a quarter in use, counting 800 bytes of guard).
//
// It waits (guardedConn.wait) only when coder/websocket's read buffer is
// known to be empty, so the wait never looks at that buffer, which
// coder/websocket's close handshake may be filling on another goroutine:
// right after a read that answered errIdle (assumption 16 in coder.go),
// or after a message once guardedConn ends its reads at frame ends
// (assumption 17). Until then (the handler may have left bytes in the
// buffer), it reads once more after a message, a probe that answers
// errIdle at once when nothing is buffered. waitFirst says the caller
// saw errIdle: the wait comes first. Otherwise (the hand-over) it reads
// first.
func (c *Conn) readDetached(d *detached, waitFirst bool) {
	probe := false // the read follows a message without a wait
	for {
		if waitFirst {
			c.reading.Add(1) // for the keepalive: waiting counts as reading
			c.guard.wait()
			c.reading.Add(-1)
		}
		typ, buf, err := c.readNext(d, true)
		switch {
		case err == errIdle && probe:
			// Nothing more has come: wait here, on the stack the
			// messages grew, for the next one.
			waitFirst, probe = true, false
			continue
		case err == errIdle:
			// Only control frames came (the keepalive's pong, a ping
			// answered), or nothing since the hand-over. Reading grew
			// the stack: wait on a fresh one. Once per PingInterval at
			// most, on an idle connection.
			go c.readDetached(d, true)
			return
		case err != nil:
			c.over(err, nil)
			return
		}
		if c.guard.framedReads() {
			waitFirst, probe = true, false
		} else {
			waitFirst, probe = false, true
		}
		m := Message{Type: typ, Data: append([]byte{}, buf.Bytes()...)}
		putReadBuf(buf)
		if stack, err := c.callDetached(d, m); err != nil {
			c.over(err, stack)
			return
		}
	}
}

// callDetached calls fn, turning a panic into an error and its stack, as
// run does for a handler.
func (c *Conn) callDetached(d *detached, m Message) (stack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack = debug.Stack()
			err = fmt.Errorf("wsroute: message function panicked: %v", p)
		}
	}()
	if d.fn == nil {
		return nil, &CloseError{Code: StatusPolicyViolation, Reason: "unexpected data message"}
	}
	return nil, d.fn(d, c, m)
}

// over ends a connection whose handler (or, detached, whose message
// function) is done with it: the close code, the log line, the OnEnd
// functions, then the Tracker and the final state.
func (c *Conn) over(err error, stack []byte) {
	defer c.end()
	if t := c.route.opts.Tracker; t != nil {
		defer t.end(c)
	}
	c.finish(err, stack)
	c.runEndHooks(err)
}
