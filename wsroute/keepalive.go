package wsroute

import (
	"context"
	"sync/atomic"
	"time"
)

// startKeepalive arms the ping timer. No goroutine waits between pings:
// the timer starts one (keepalive) that lives for one round trip, or up
// to PongTimeout for a dead peer.
func (c *Conn) startKeepalive() {
	if c.route.opts.PingInterval < 0 {
		return
	}
	// Assign before arming, so keepalive always sees the timer.
	t := time.AfterFunc(time.Hour, c.keepalive)
	t.Stop()
	c.pingTimer = t
	t.Reset(c.route.opts.PingInterval)
}

func (c *Conn) stopKeepalive() {
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
}

// keepalive pings the peer. A pong is only seen while the connection is
// being read, so the peer is judged dead only if a reader was waiting for
// the whole wait and no pong came. See pongWait for how long that is.
func (c *Conn) keepalive() {
	if c.State() >= StateClosing || c.nc.closed.Load() {
		return
	}
	readingAtStart := c.reading.Load() > 0
	// A ping ends with the connection, even one that coder/websocket
	// was not told about: end cancels it. Not a child of the
	// connection's context, which would then make its Done channel, for
	// good, on every connection that lives to its first ping.
	ctx, cancel := context.WithCancel(context.Background())
	if !c.setPingStop(cancel) {
		cancel()
		return
	}
	w := newPongWait(c.nc, c.route.opts.PongTimeout, cancel)
	err := c.ws.Ping(ctx)
	w.stop()
	c.setPingStop(nil)
	cancel()
	if c.State() >= StateClosing || c.nc.closed.Load() {
		return
	}
	if err != nil && readingAtStart && c.reading.Load() > 0 {
		l := c.route.opts.logger()
		l.Debug("wsroute: peer missed its pong; closing", "path", c.r.URL.Path, "conn", c.ID(),
			"pong_timeout", c.route.opts.PongTimeout)
		c.nc.Close()
		return
	}
	c.pingTimer.Reset(c.route.opts.PingInterval)
}

// setPingStop records the cancel function of the ping in flight (nil
// when it is over), for end. It reports false if the connection is
// already over: there is then no ping to send.
func (c *Conn) setPingStop(stop context.CancelFunc) bool {
	c.lc.Lock()
	defer c.lc.Unlock()
	if State(c.st.Load() & stateMask).over() {
		return false
	}
	c.pingStop = stop
	return true
}

// pongWait bounds the wait for a pong. The ping goes out behind the data
// already written, which a slow peer may take longer than PongTimeout to
// read: that peer is alive, and a send to it must not be killed. So when
// the ping went out behind data still in the socket, the wait is
// extended by PongTimeout each time the peer is seen consuming that data
// (the kernel's count of unacknowledged bytes falls, or writes to it
// complete); the peer is judged only after PongTimeout in which it
// neither answered nor consumed anything. A peer whose own receive
// buffer holds more than it reads in PongTimeout is beyond what the
// server can see.
type pongWait struct {
	nc      *netConn
	timeout time.Duration
	cancel  context.CancelFunc
	timer   *time.Timer
	written int64 // netConn.written at the last look
	queued  int   // unsentBytes at the last look
	known   bool  // unsentBytes is known on this system
	stopped atomic.Bool
}

func newPongWait(nc *netConn, timeout time.Duration, cancel context.CancelFunc) *pongWait {
	w := &pongWait{nc: nc, timeout: timeout, cancel: cancel}
	w.written = nc.written.Load()
	w.queued, w.known = unsentBytes(nc.Conn)
	if !w.known || w.queued > 0 {
		// The ping goes out behind data of ours: assign before arming,
		// so expire always sees the timer.
		w.timer = time.AfterFunc(time.Hour, w.expire)
		w.timer.Stop()
		w.timer.Reset(timeout)
		return w
	}
	// Nothing of ours is in the way: the pong is due in timeout.
	w.timer = time.AfterFunc(timeout, cancel)
	return w
}

// expire ends the wait, unless the peer consumed data since the last look.
func (w *pongWait) expire() {
	if w.stopped.Load() {
		return
	}
	written := w.nc.written.Load()
	consumed := written > w.written
	if w.known {
		queued, ok := unsentBytes(w.nc.Conn)
		// Acknowledged since the last look: what was written, less
		// what the queue grew by.
		consumed = ok && (written-w.written)-int64(queued-w.queued) > 0
		w.queued = queued
	}
	w.written = written
	if consumed {
		w.timer.Reset(w.timeout)
		return
	}
	w.cancel()
}

func (w *pongWait) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}
