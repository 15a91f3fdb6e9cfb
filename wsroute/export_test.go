package wsroute

// HijackBuffers reports, for the tests of readbuf.go, what Hijack gave
// coder/websocket on c: a writer of writerBufSize bytes, whether wsroute
// writes data frames itself, and whether the socket is read through a
// pooled buffer. Call it from c's handler after Accept.
func HijackBuffers(c *Conn) (smallWriter, direct, pooledReads bool) {
	return c.nc.smallWriter, c.nc.direct, c.guard.sock.rawReads()
}

// ReadBufferHeld reports whether c holds a pooled read buffer. Call it
// from the goroutine that receives, between receives.
func ReadBufferHeld(c *Conn) bool {
	return c.guard.sock.pending()
}

// DetachWithoutPoller makes c's Detach keep its reader on a goroutine of
// its own while idle, as on systems without the poller (poll_linux.go),
// so that both ways are tested on Linux. Call it from c's handler before
// Detach.
func DetachWithoutPoller(c *Conn) {
	c.noPoll = true
}

// PollSupported reports whether Detach's idle connections are served by
// the poller on this system.
const PollSupported = pollSupported

// WatchEmptyReadBuffer calls f, until the returned function is called,
// wherever wsroute relies on coder/websocket's read buffer being empty
// (assumptions 16 and 17 in coder.go), with the number of bytes that
// buffer holds. Tests that use it must not run in parallel.
func WatchEmptyReadBuffer(f func(buffered int)) (stop func()) {
	hook := func(g *guardedConn) { f(g.br.Buffered()) }
	emptyHook.Store(&hook)
	return func() { emptyHook.Store(nil) }
}
