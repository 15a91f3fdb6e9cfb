//go:build !linux

package wsroute

import "net"

// unsentBytes is not known on this system: the keepalive then counts
// the peer as reading while writes to it complete.
func unsentBytes(net.Conn) (int, bool) { return 0, false }
