package wsroute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// route is the http.Handler returned by Handle.
type route struct {
	opts *Options
	fn   HandlerFunc
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		h := w.Header()
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
		h.Set("Sec-WebSocket-Version", "13")
		http.Error(w, "426 Upgrade Required: this endpoint only speaks WebSocket", http.StatusUpgradeRequired)
		return
	}
	if status, msg := rt.opts.checkHandshake(w, r); status != 0 {
		http.Error(w, msg, status)
		return
	}
	c := newConn(rt, w, r)
	if t := rt.opts.Tracker; t != nil && !t.begin() {
		c.Close(StatusGoingAway, "going away")
		c.end()
		return
	}
	// Under hsMu: handshakeTick, which takes it, sees the timer set.
	c.hsMu.Lock()
	c.hsTimer = time.AfterFunc(min(requestWatchDelay, rt.opts.HandshakeTimeout), c.handshakeTick)
	c.hsMu.Unlock()
	growStack()
	stack, err := c.run()
	// Through c, not the local: a local used after run would keep the
	// timer alive as long as the handler runs.
	c.hsMu.Lock()
	if c.hsTimer != nil {
		c.hsTimer.Stop()
		c.hsTimer = nil
	}
	c.hsMu.Unlock()
	if c.handOver(err, stack) {
		// Detached: the connection lives on without this goroutine,
		// and its reader ends it (detach.go).
		return
	}
	c.over(err, stack)
}

// growStack makes sure the goroutine has the stack that an Accept and a
// Receive through the middleware need, while few frames are on it. The
// handshake and the first read go about 5 KB deep (net/http, wsroute and
// coder/websocket), past the 4 KB a goroutine of net/http usually starts
// with, so the stack was doubled anyway, from inside coder/websocket's
// Accept: copying it there meant walking some twenty frames, 6% of the
// CPU of a handshake. Doubled here it costs a fraction of that, and
// nothing when the stack is already large enough.
//
//go:noinline
func growStack() {
	var b [stackNeed]byte
	keepStack(b[:])
}

// stackNeed is what growStack makes room for, besides what is already in
// use and the runtime's guard.
const stackNeed = 4 << 10

//go:noinline
func keepStack([]byte) {}

// requestWatchDelay is how long a handshake may be pending before its
// request's context is watched (watchRequest). Most handlers answer
// sooner, and a watch, once set, leaves a map and a channel in the
// request's context for as long as the handler runs.
const requestWatchDelay = 10 * time.Millisecond

// handshakeTick runs while the handshake is pending: after
// requestWatchDelay it starts watching the request's context, and after
// Options.HandshakeTimeout it refuses the connection: its context is
// cancelled, Accept will fail, and 503 is written when the handler
// returns.
func (c *Conn) handshakeTick() {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsTimer == nil || c.State() != StateHandshake || c.accepted.Load() {
		return // answered, or stopped
	}
	if !c.hsWatching {
		c.hsWatching = true
		c.watchRequest()
		if rest := c.route.opts.HandshakeTimeout - requestWatchDelay; rest > 0 {
			c.hsTimer.Reset(rest)
			return
		}
	}
	c.hsTimedOut = true
	c.end()
}

// run calls the handler, turning a panic into an error and its stack.
func (c *Conn) run() (stack []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack = debug.Stack()
			err = fmt.Errorf("wsroute: handler panicked: %v", p)
		}
	}()
	return nil, c.route.fn(c.ctx, c)
}

// finish turns the handler's result into the end of the connection, as
// the package documentation's table says, and logs it.
func (c *Conn) finish(err error, stack []byte) {
	l := c.route.opts.logger()
	ctx := context.Background()
	if !c.accepted.Load() {
		c.finishUnaccepted(l, err, stack)
		return
	}
	defer c.release()
	if stack != nil {
		l.Error("wsroute: handler panicked", c.attrs(slog.Any("panic", err), slog.String("stack", string(stack)))...)
		c.closeWith(StatusInternalError, "internal error", c.route.opts.CloseTimeout)
		return
	}
	if p := c.readFailed.Load(); p != nil && (err == nil || !errors.Is(err, *p)) {
		// The connection failed for reading; that decides its end, even
		// if the handler swallowed the error.
		err = *p
	}
	code, reason, level := classify(err)
	if c.State() >= StateClosing {
		// Already over (the peer left, or Close was called): nothing
		// more is sent, and it is not news.
		level = slog.LevelDebug
	}
	c.closeWith(code, reason, c.route.opts.CloseTimeout)
	if l.Enabled(ctx, level) {
		l.Log(ctx, level, "wsroute: connection closed", c.attrs(slog.Int("code", int(c.closedCode())), errAttr(err))...)
	}
}

// release drops the socket of a connection whose handler returned, and
// closes coder/websocket's Conn if nothing has yet: when the socket was
// closed under the handler (a missed pong, a broken peer), the close
// handshake never ran, and that Conn would otherwise wait for its
// finalizer, holding its buffers for another garbage collection.
func (c *Conn) release() {
	c.nc.Close()
	c.ws.CloseNow()
}

func (c *Conn) finishUnaccepted(l *slog.Logger, err error, stack []byte) {
	c.hsMu.Lock()
	state, timedOut, answered := c.State(), c.hsTimedOut, c.hsStatus != 0
	c.hsMu.Unlock()
	if stack != nil && (timedOut || state != StateHandshake) {
		// The handshake was already answered (or timed out): the panic
		// changes nothing on the wire, but it is a bug to report.
		l.Error("wsroute: handler panicked", c.attrs(slog.Any("panic", err), slog.String("stack", string(stack)))...)
	}
	switch {
	case timedOut && !answered:
		l.Info("wsroute: handshake timed out", c.attrs(slog.Duration("timeout", c.route.opts.HandshakeTimeout))...)
		c.refuse(http.StatusServiceUnavailable, "503 handshake not answered in time")
		return
	case state != StateHandshake:
		// Reject was called, Accept failed and wrote its response, or
		// the client left.
		l.Debug("wsroute: handshake refused", c.attrs(errAttr(err))...)
		return
	}
	var ce *CloseError
	switch {
	case stack != nil:
		l.Error("wsroute: handler panicked before accepting", c.attrs(slog.Any("panic", err), slog.String("stack", string(stack)))...)
		c.refuse(http.StatusInternalServerError, "500 internal error")
	case errors.As(err, &ce):
		code := ce.Code
		if !code.Sendable() {
			code = StatusInternalError
		}
		if cerr := c.Close(code, ce.Reason); cerr != nil {
			l.Debug("wsroute: could not accept to close", c.attrs(errAttr(cerr))...)
		}
		l.Debug("wsroute: connection refused with a close code", c.attrs(slog.Int("code", int(code)))...)
	case err == nil:
		// A middleware that neither called next nor refused.
		l.Debug("wsroute: handler returned without accepting; answering 403", c.attrs()...)
		c.refuse(http.StatusForbidden, "403 Forbidden")
	default:
		l.Error("wsroute: handler failed before accepting", c.attrs(errAttr(err))...)
		c.refuse(http.StatusInternalServerError, "500 internal error")
	}
}

// refuse answers a handshake the handler left unanswered.
func (c *Conn) refuse(status int, msg string) {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	c.refuseLocked(status, msg)
}

// refuseLocked writes an HTTP refusal and moves the connection to
// StateRefused.
func (c *Conn) refuseLocked(status int, msg string) {
	c.hsStatus = status
	http.Error(c.w, msg, status)
	c.end()
}

// classify maps a handler's result to the close code the client sees,
// the reason, and the log level. Internal error text never reaches the
// client.
func classify(err error) (StatusCode, string, slog.Level) {
	var ce *CloseError
	switch {
	case err == nil:
		return StatusNormalClosure, "", slog.LevelDebug
	case errors.As(err, &ce):
		if !ce.Code.Sendable() {
			return StatusInternalError, "internal error", slog.LevelError
		}
		return ce.Code, ce.Reason, slog.LevelDebug
	case errors.Is(err, ErrClosed), errors.Is(err, ErrShuttingDown):
		return StatusNormalClosure, "", slog.LevelDebug
	case errors.Is(err, ErrWrongMessageType):
		return StatusUnsupportedData, "unsupported message type", slog.LevelInfo
	case errors.Is(err, ErrInvalidUTF8):
		return StatusInvalidFramePayloadData, "invalid UTF-8", slog.LevelInfo
	case errors.Is(err, ErrInvalidJSON):
		return StatusInvalidFramePayloadData, "invalid JSON", slog.LevelInfo
	case errors.Is(err, ErrMessageTooBig):
		return StatusMessageTooBig, "message too big", slog.LevelInfo
	case errors.Is(err, ErrProtocol):
		return StatusProtocolError, "protocol error", slog.LevelInfo
	}
	return StatusInternalError, "internal error", slog.LevelError
}

func (c *Conn) attrs(extra ...slog.Attr) []any {
	a := make([]any, 0, 4+len(extra))
	a = append(a, slog.String("path", c.r.URL.Path), slog.String("remote", c.ClientIP()), slog.String("conn", c.ID()))
	for _, e := range extra {
		a = append(a, e)
	}
	return a
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("error", err.Error())
}
