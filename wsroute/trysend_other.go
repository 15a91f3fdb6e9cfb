//go:build !unix

package wsroute

const rawWriteSupported = false

func (c *netConn) rawWrite(fd uintptr) { c.rawN = 0 }
