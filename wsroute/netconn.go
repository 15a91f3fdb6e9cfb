package wsroute

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
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
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hijacks the real connection and wraps it.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	nc := &netConn{Conn: c, writeTimeout: w.writeTimeout, onClose: w.onClose}
	// net/http flushed the 101 response before returning, so the writer
	// is empty; pointing it at nc reuses its buffer instead of adding one.
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	brw.Writer.Reset(nc)
	w.nc = nc
	return nc, brw, nil
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
}

// batchPool holds batch buffers, so an idle connection keeps none and a
// burst does not leave its largest buffer behind.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBatch = 1 << 20

func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked > 0 {
		if c.batch == nil {
			c.batch = batchPool.Get().(*[]byte)
		}
		*c.batch = append(*c.batch, p...)
		return len(p), nil
	}
	return c.writeLocked(p)
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
