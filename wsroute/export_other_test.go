//go:build !linux

package wsroute

// PollArmed: no poller on this system.
func PollArmed(*Conn) bool { return false }

// PollWake: no poller on this system.
func PollWake(*Conn) {}
