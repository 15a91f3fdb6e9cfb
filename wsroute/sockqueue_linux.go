//go:build linux

package wsroute

import (
	"net"
	"syscall"
	"unsafe"
)

// unsentBytes returns how many bytes written to c its kernel still
// holds: not yet sent, or sent and not yet acknowledged by the peer
// (TIOCOUTQ, which Linux answers for TCP sockets as SIOCOUTQ).
func unsentBytes(c net.Conn) (int, bool) {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	})
	if err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
