package wsroute

import (
	"syscall"

	"github.com/nexio-go/nexio/internal/wsinternal"
)

func init() {
	wsinternal.TrySendBatch = func(c, msgs any) bool {
		return c.(*Conn).trySendBatch(*msgs.(*[]Message))
	}
}

// trySendBatch is SendBatch for a writer that has somewhere else to go
// when the socket cannot take the messages at once (hub's member
// writers, which then start a goroutine of their own that waits). It
// sends msgs only in direct mode, only if the wire is free and no control
// frame is waiting, with a single non-blocking write: all of it written,
// it reports true; nothing written (the socket's buffer is full), false,
// and the connection is as it was. A write that takes only part of the
// frames has started the messages: a goroutine of the connection's own,
// holding the wire, writes the rest as any send would (bounded by
// Options.WriteTimeout), and trySendBatch reports true; the next send
// waits for the wire as usual.
func (c *Conn) trySendBatch(msgs []Message) bool {
	if !c.accepted.Load() || !c.nc.direct || len(msgs) == 0 {
		return false
	}
	n := 0
	for _, m := range msgs {
		if checkSendable("SendBatch", m.Type) != nil || len(m.Data) > maxFramePayload {
			return false
		}
		n += len(m.Data)
	}
	if !c.nc.tryWriteMessages(msgs) {
		return false
	}
	c.msgsOut.Add(int64(len(msgs)))
	c.bytesOut.Add(int64(n))
	return true
}

// tryWriteMessages writes msgs as frames with one non-blocking write(2),
// if the wire is free now; see trySendBatch.
func (c *netConn) tryWriteMessages(msgs []Message) bool {
	if !c.mu.TryLock() {
		return false
	}
	if c.closeSent || c.closed.Load() || c.corked > 0 || c.ctrlPending.Load() || c.raw == nil && !c.initRaw() {
		c.unlockWire()
		return false
	}
	b := batchPool.Get().(*[]byte)
	buf := (*b)[:0]
	for _, m := range msgs {
		buf = appendFrameHeader(buf, byte(m.Type), true, len(m.Data))
		buf = append(buf, m.Data...)
		if len(buf) > segmentSize {
			// Large batches go the usual way, in segments.
			putBatch(b, buf)
			c.unlockWire()
			return false
		}
	}
	c.rawBuf = buf
	err := c.raw.Control(c.rawWriteFn)
	n := c.rawN
	c.rawBuf = nil
	switch {
	case err == nil && n == len(buf):
		c.written.Add(int64(n))
		putBatch(b, buf)
		c.unlockWire()
		return true
	case err != nil || n <= 0:
		// Nothing written (EAGAIN: the socket's buffer is full; or an
		// error that the waiting send will meet and report).
		putBatch(b, buf)
		c.unlockWire()
		return false
	}
	// Part of a frame is on the wire: the rest must follow before
	// anything else. The wire stays held, by finishWrite now.
	c.written.Add(int64(n))
	go c.finishWrite(b, buf, n)
	return true
}

// finishWrite writes what a non-blocking write left of buf, holding the
// wire that tryWriteMessages handed over, then lets go of it.
func (c *netConn) finishWrite(b *[]byte, buf []byte, n int) {
	c.writeLocked(buf[n:], false) // a failure closes the connection
	putBatch(b, buf)
	c.unlockWire()
}

func putBatch(b *[]byte, buf []byte) {
	if cap(buf) <= maxPooledBatch {
		*b = buf[:0]
		batchPool.Put(b)
	}
}

// initRaw finds the socket's file descriptor, once; the caller holds
// the wire. It reports false for a connection that has none (a TLS
// connection, a pipe): tryWriteMessages then never tries.
func (c *netConn) initRaw() bool {
	if c.noRaw {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || !rawWriteSupported {
		c.noRaw = true
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.noRaw = true
		return false
	}
	c.raw = rc
	c.rawWriteFn = c.rawWrite
	return true
}
