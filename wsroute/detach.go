package wsroute

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
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
// (coder.go, assumption 12), on the goroutine the messages ran on:
// handling a message grows its stack, as a handler's would, and the next
// messages reuse it. Once only control frames come (the keepalive's
// pong, within Options.PingInterval), the connection is idle. On Linux,
// when the socket is a *net.TCPConn or *net.UnixConn (not TLS), an idle
// connection then has no goroutine at all: its socket waits in a
// process-wide epoll set, which one goroutine of wsroute's serves while
// such connections exist (it returns 20 ms after the last one ends, so a
// leak check such as goleak's finds nothing left), and a reader starts
// on a fresh stack when the peer sends again, or ends the connection
// when it closes from either side. Elsewhere the wait moves to a fresh goroutine, so an idle
// connection is back to 2 KiB of stack.
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
	go c.readDetached(d, readFirst)
	return true
}

// How a detached reader starts (readDetached).
const (
	// Read first: the handler may have left a message in
	// coder/websocket's read buffer (the hand-over).
	readFirst = iota
	// Wait first: the buffer is known to be empty.
	waitFirst
	// The poller saw the socket readable, or netConn.Close closed it
	// (poll_linux.go): read what came, without waiting. Counted as
	// reading since rest.
	pollFirst
)

// readDetached reads each message of a detached connection and hands it
// to fn, in order, waiting for the peer between messages. Its goroutine
// is wsroute's, one per detached connection at any time: when fn fails
// or the connection ends, it ends the connection as a returning handler
// would, and returns; when only control frames came since its last wait
// (or nothing since the hand-over), the connection is idle: it hands the
// wait over (rest) and returns. Messages do not start a new goroutine:
// each would start on 2 KiB and grow it anew (an echo cost ~15% more
// CPU), and the garbage collector never shrinks a stack back to 2 KiB (it
// needs less than a quarter in use, counting 800 bytes of guard). Nor do
// they go through the poller: a connection that talks is waited for on
// its reader's goroutine, until a wait brings only control frames.
//
// It waits (guardedConn.wait, or the poller's guardedConn.poll) only
// when coder/websocket's read buffer is known to be empty, so the wait
// never looks at that buffer, which coder/websocket's close handshake may
// be filling on another goroutine: right after a read that answered
// errIdle (assumption 16 in coder.go), or after a message once
// guardedConn ends its reads at frame ends (assumption 17). Until then
// (the handler may have left bytes in the buffer), it reads once more
// after a message, a probe that answers errIdle at once when nothing is
// buffered. from says how it starts: after the hand-over it reads first.
func (c *Conn) readDetached(d *detached, from int) {
	probe := false // the read follows a message without a wait
	for {
		switch from {
		case waitFirst:
			c.reading.Add(1) // for the keepalive: waiting counts as reading
			c.guard.wait()
			c.reading.Add(-1)
		case pollFirst:
			if !c.guard.poll() && c.nc.poll.Load().arm() {
				return // woken with nothing to read: back to the poller
			}
			// What came is pending (or the error met). If arm
			// failed, the socket is closing: the reader goes on as
			// after errIdle, and its wait fails as the socket closes.
			c.reading.Add(-1)
		}
		typ, buf, err := c.readNext(d, true)
		switch {
		case err == errIdle && probe:
			// Nothing more has come: wait here, on the stack the
			// messages grew, for the next one.
			from, probe = waitFirst, false
			continue
		case err == errIdle:
			// Only control frames came (the keepalive's pong, a ping
			// answered), or nothing since the hand-over: idle. Once
			// per PingInterval at most, on an idle connection.
			if c.rest(d) {
				return
			}
			// No poller: reading grew the stack, wait on a fresh one.
			go c.readDetached(d, waitFirst)
			return
		case err != nil:
			c.over(err, nil)
			return
		}
		if c.guard.framedReads() {
			from, probe = waitFirst, false
		} else {
			from, probe = readFirst, true
		}
		m := Message{Type: typ, Data: append([]byte{}, buf.Bytes()...)}
		putReadBuf(buf)
		if stack, err := c.callDetached(d, m); err != nil {
			c.over(err, stack)
			return
		}
	}
}

// rest hands an idle detached connection over to the poller, where
// there is one (poll_linux.go) and the socket is one it watches (a
// *net.TCPConn or *net.UnixConn that sockReader reads itself, not a TLS
// connection): the connection then has no goroutine until the peer
// sends again, and the caller returns. It reports false where the
// caller's goroutine must hand the wait to another: on other systems,
// for other sockets, or when the socket is closing (the wait then fails
// as it closes).
func (c *Conn) rest(d *detached) bool {
	r := c.nc.poll.Load()
	if r == nil {
		if !pollSupported || c.noPoll || !c.guard.sock.rawReads() {
			return false
		}
		var err error
		if r, err = newPollReg(c, d); err != nil {
			c.noPoll = true
			// The system refused the epoll set: every connection
			// would say so, so the first one does.
			pollWarnOnce.Do(func() {
				c.route.opts.logger().Warn("wsroute: idle detached connections keep a goroutine each "+
					"(about 2 KiB more per connection), the system refused an epoll set: "+err.Error()+
					"; check the process's limits (max_user_instances, seccomp)", c.attrs()...)
			})
			return false
		}
		c.nc.poll.Store(r) // before arm looks at nc.closed (pollReg.arm)
	}
	// The poller waits for the peer: that counts as reading, for the
	// keepalive (keepalive.go), until the reader it starts has read.
	c.reading.Add(1)
	if r.arm() {
		return true
	}
	c.reading.Add(-1)
	return false
}

// pollWarnOnce logs that the poller could not be had, once a process.
var pollWarnOnce sync.Once

// readPolled is the reader the poller starts when an idle detached
// connection's socket is readable, or netConn.Close when it closed one
// that the poller had.
func (c *Conn) readPolled(r *pollReg) {
	c.readDetached(r.d, pollFirst)
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
