//go:build unix

package wsroute

import "syscall"

const rawWriteSupported = true

// rawWrite is the one write(2) of tryWriteMessages, on the socket's
// non-blocking descriptor: it never waits. It runs through
// RawConn.Control, which unlike RawConn.Write makes one attempt and
// ignores the write deadline (the deadline bounds waiting, and this does
// not wait); the wire, held by the caller, keeps every other writer out.
func (c *netConn) rawWrite(fd uintptr) {
	n, err := syscall.Write(int(fd), c.rawBuf)
	if err != nil {
		n = 0
	}
	c.rawN = n
}
