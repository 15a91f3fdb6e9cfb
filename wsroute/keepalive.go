package wsroute

import (
	"context"
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
// the whole PongTimeout and no pong came.
func (c *Conn) keepalive() {
	if c.State() >= StateClosing || c.nc.closed.Load() {
		return
	}
	readingAtStart := c.reading.Load() > 0
	ctx, cancel := context.WithTimeout(context.Background(), c.route.opts.PongTimeout)
	err := c.ws.Ping(ctx)
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
