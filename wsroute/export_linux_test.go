package wsroute

// PollArmed reports whether c's socket waits in the poller's epoll set,
// with no reader running (poll_linux.go).
func PollArmed(c *Conn) bool {
	if !c.accepted.Load() {
		return false
	}
	r := c.nc.poll.Load()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.armed
}

// PollWake starts c's reader as the poller does when c's socket is
// readable, whether it is or not, if c is armed.
func PollWake(c *Conn) {
	if !c.accepted.Load() {
		return
	}
	if r := c.nc.poll.Load(); r != nil {
		r.fire()
	}
}
