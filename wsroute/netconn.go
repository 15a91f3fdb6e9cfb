package wsroute

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hijackWriter is the http.ResponseWriter handed to websocket.Accept. It
// defines Hijack itself, because coder/websocket takes the first
// http.Hijacker it finds, and returns a netConn that the Conn controls:
// the socket under coder/websocket's frames, where batches are coalesced
// and write deadlines are kept.
type hijackWriter struct {
	http.ResponseWriter
	nc           *netConn
	writeTimeout time.Duration
	onClose      func()
	status       int   // what coder/websocket answered, for ConnEnd
	own101       bool  // the 101 response is Hijack's to write
	hijackErr    error // why Hijack failed, if it did
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader records the status on its way through. When the next
// writer is net/http's own, the 101 response is kept back and written by
// Hijack itself: net/http would format it through its general response
// path (a Date header, content sniffing rules), which costs more CPU than
// the rest of the handshake and deepens the handler's stack for good.
// Behind wrapping middleware (which may record the status) it is passed
// on as usual.
func (w *hijackWriter) WriteHeader(status int) {
	w.status = status
	if status == http.StatusSwitchingProtocols && !isWrapper(w.ResponseWriter) {
		w.own101 = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

// hijackError explains a failed Hijack to the server's operator: it is a
// server error (the client got 500), and the fix is in the middleware
// around the route, which the message names.
func hijackError(rw http.ResponseWriter, err error) error {
	if !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("wsroute: cannot hijack the connection: %w", err)
	}
	chain := fmt.Sprintf("%T", rw)
	for {
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
		chain += " -> " + fmt.Sprintf("%T", rw)
	}
	return fmt.Errorf("wsroute: cannot hijack the connection: the http.ResponseWriter chain (%s) ends in a writer "+
		"with neither Hijack nor Unwrap, so the client got 500; a middleware that wraps the ResponseWriter must "+
		"implement Unwrap() http.ResponseWriter, and wrappers that cannot (http.TimeoutHandler) must keep "+
		"WebSocket routes outside them: %w", chain, err)
}

func isWrapper(rw http.ResponseWriter) bool {
	_, ok := rw.(interface{ Unwrap() http.ResponseWriter })
	return ok
}

// Hijack hijacks the real connection and wraps it.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		w.hijackErr = err
		return nil, nil, err
	}
	if w.own101 {
		writeSwitchingProtocols(brw.Writer, w.Header())
	}
	// The response is flushed before the writer is handed on, so it is
	// empty; pointing it at nc reuses its buffer instead of adding one.
	nc := &netConn{Conn: c, writeTimeout: w.writeTimeout, onClose: w.onClose}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			// The client is gone. The connection is hijacked all the
			// same: the handler's first Receive or Send reports it as
			// ErrClosed, rather than a server error being logged here.
			nc.Close()
		}
	}
	brw.Writer.Reset(nc)
	w.nc = nc
	return nc, brw, nil
}

// writeSwitchingProtocols writes the 101 response with header h. Values
// cannot break the response: line breaks become spaces and keys that are
// not tokens are skipped, as net/http does.
func writeSwitchingProtocols(bw *bufio.Writer, h http.Header) {
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for k, vs := range h {
		if !validHeaderKey(k) {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			for i := 0; i < len(v); i++ {
				if b := v[i]; b == '\r' || b == '\n' {
					bw.WriteByte(' ')
				} else {
					bw.WriteByte(b)
				}
			}
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}

func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return true
}

// netConn wraps the hijacked connection.
//
// While corked (between cork and uncork, used by SendBatch), writes append
// to an in-memory batch instead of reaching the socket; uncork writes the
// whole batch with one system call. Every real write carries a deadline
// refreshed on progress, so a peer that stops reading cannot block a
// writer for longer than writeTimeout.
type netConn struct {
	net.Conn
	writeTimeout time.Duration
	onClose      func()

	mu     sync.Mutex // guards corked and batch; held across real writes to keep frames in order
	corked int
	batch  *[]byte

	closeOnce sync.Once
	closed    atomic.Bool

	// direct is set when no extension was negotiated: data frames are
	// then written by writeMessages, and coder/websocket only writes
	// control frames, each complete in one Write. closeSent (guarded by
	// mu) records that one of them was a close frame: no data may follow.
	direct    bool
	closeSent bool

	// vetClose, when set, sees each close frame written in direct mode
	// and may return another to write instead (Conn.vetCloseFrame).
	vetClose func(frame []byte) []byte
}

// batchPool holds batch buffers, so an idle connection keeps none and a
// burst does not leave its largest buffer behind.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBatch = 1 << 20

func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if c.direct && len(p) > 0 && p[0]&0x0f == 0x8 {
		c.closeSent = true
		if c.vetClose != nil {
			if q := c.vetClose(p); q != nil {
				p = q
			}
		}
	}
	if c.corked > 0 {
		if c.batch == nil {
			c.batch = batchPool.Get().(*[]byte)
		}
		*c.batch = append(*c.batch, p...)
		return n, nil
	}
	m, err := c.writeLocked(p)
	if err == nil {
		return n, nil // all of p, or the frame that replaced it
	}
	return min(m, n), err
}

// writeLocked writes p to the socket. The deadline is refreshed whenever
// the write makes progress: the timeout is for a stalled peer, not a
// large batch. A failed write leaves a partial frame on the wire, so the
// connection is closed.
func (c *netConn) writeLocked(p []byte) (int, error) {
	total := 0
	for {
		if c.writeTimeout > 0 {
			c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		}
		n, err := c.Conn.Write(p)
		total += n
		if err == nil {
			return total, nil
		}
		if n > 0 && n < len(p) && errors.Is(err, os.ErrDeadlineExceeded) {
			p = p[n:]
			continue
		}
		c.Close()
		return total, err
	}
}

// writeMessages writes msgs as complete, unmasked frames with one write
// (servers never mask). It is the data path when no extension was
// negotiated: coder/websocket's own Write takes two channel-based locks
// and a flush per message, which cost more than the system call that a
// batch shares. Holding mu keeps every frame whole between coder's
// control frames.
func (c *netConn) writeMessages(msgs []Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent || c.closed.Load() {
		return net.ErrClosed
	}
	b := batchPool.Get().(*[]byte)
	buf := (*b)[:0]
	for _, m := range msgs {
		buf = appendFrameHeader(buf, m.Type, len(m.Data))
		buf = append(buf, m.Data...)
	}
	var err error
	if c.corked > 0 {
		if c.batch == nil {
			c.batch = batchPool.Get().(*[]byte)
		}
		*c.batch = append(*c.batch, buf...)
	} else {
		_, err = c.writeLocked(buf)
	}
	if cap(buf) <= maxPooledBatch {
		*b = buf[:0]
		batchPool.Put(b)
	}
	return err
}

// appendFrameHeader appends the header of a final, unmasked frame
// (RFC 6455, section 5.2).
func appendFrameHeader(b []byte, typ MessageType, n int) []byte {
	b = append(b, 0x80|byte(typ))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func (c *netConn) cork() {
	c.mu.Lock()
	c.corked++
	c.mu.Unlock()
}

// uncork ends one cork; the last one writes the batch.
func (c *netConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked--
	if c.corked > 0 || c.batch == nil {
		return nil
	}
	b := c.batch
	c.batch = nil
	var err error
	if len(*b) > 0 {
		_, err = c.writeLocked(*b)
	}
	if cap(*b) <= maxPooledBatch {
		*b = (*b)[:0]
		batchPool.Put(b)
	}
	return err
}

// Close closes the socket once and reports the end of the connection.
func (c *netConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		err = c.Conn.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}
