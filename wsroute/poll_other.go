//go:build !linux

package wsroute

import "errors"

// pollSupported reports whether this system has the detached readers'
// poller (poll_linux.go). Without it, an idle detached connection's
// reader waits on its own goroutine.
const pollSupported = false

// pollReg is a registration with the poller: none here.
type pollReg struct {
	c *Conn
	d *detached
}

func newPollReg(*Conn, *detached) (*pollReg, error) {
	return nil, errors.New("wsroute: no poller on this system")
}

func (*pollReg) arm() bool   { return false }
func (*pollReg) close() bool { return false }
