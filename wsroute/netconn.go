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
	"syscall"
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
	guard        *guardedConn // nc's reading side
	writeTimeout time.Duration
	onClose      func()
	conn         *Conn // for logging a broken assumption (coder.go)
	status       int   // what coder/websocket answered, for ConnEnd
	own101       bool  // the 101 response is Hijack's to write
	hijackErr    error // why Hijack failed, if it did

	// hdr is the response's header while Accept runs, when Hijack writes
	// the 101 itself: a map from headerPool, so that the headers
	// coder/websocket sets (and the 101's) are not kept in net/http's
	// map for as long as the connection lives. nil means net/http's.
	hdr http.Header
}

// headerPool holds the maps of hijackWriter.hdr.
var headerPool = sync.Pool{New: func() any { return make(http.Header, 8) }}

// ownHeader makes w collect the response's header in a pooled map, seeded
// with what the handler set in net/http's, when Hijack will write the 101
// response itself (see WriteHeader).
func (w *hijackWriter) ownHeader() {
	if isWrapper(w.ResponseWriter) {
		return
	}
	w.hdr = headerPool.Get().(http.Header)
	for k, vs := range w.ResponseWriter.Header() {
		w.hdr[k] = vs
	}
}

// releaseHeader returns the pooled header; w.Header is net/http's again.
func (w *hijackWriter) releaseHeader() {
	if w.hdr != nil {
		clear(w.hdr)
		headerPool.Put(w.hdr)
		w.hdr = nil
	}
}

// Header returns the header being collected for the response.
func (w *hijackWriter) Header() http.Header {
	if w.hdr != nil {
		return w.hdr
	}
	return w.ResponseWriter.Header()
}

// toNetHTTP copies the collected header into net/http's, before a
// response other than the 101 goes out through net/http.
func (w *hijackWriter) toNetHTTP() {
	if w.hdr != nil {
		h := w.ResponseWriter.Header()
		clear(h)
		for k, vs := range w.hdr {
			h[k] = vs
		}
	}
}

// Write writes a body (of an error response: coder/websocket's refusals
// go through http.Error) with the collected header.
func (w *hijackWriter) Write(p []byte) (int, error) {
	w.toNetHTTP()
	return w.ResponseWriter.Write(p)
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
	w.toNetHTTP()
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
	g := &guardedConn{netConn: netConn{Conn: c, writeTimeout: w.writeTimeout, onClose: w.onClose, conn: w.conn}}
	nc := &g.netConn
	var werr error
	if w.own101 {
		// Written from a pooled buffer, not through brw.Writer: net/http's
		// 4 KiB buffer, replaced below, is then garbage that no byte has
		// touched.
		b := readBufPool.Get().(*[readBufSize]byte)
		_, werr = c.Write(appendSwitchingProtocols(b[:0], w.Header()))
		readBufPool.Put(b)
	} else if brw.Writer.Buffered() > 0 {
		werr = brw.Writer.Flush()
	}
	if werr != nil {
		// The client is gone. The connection is hijacked all the
		// same: the handler's first Receive or Send reports it as
		// ErrClosed, rather than a server error being logged here.
		nc.Close()
	}
	// The response is flushed, so the writer is empty. net/http's conn
	// points at brw's reader and writer for as long as the handler runs:
	// their contents are replaced, rather than new ones returned, so
	// that its 4 KiB buffers are freed (readbuf.go; coder.go, 13-15).
	if directMode(w.Header()) {
		*brw.Writer = *bufio.NewWriterSize(nc, writerBufSize)
		nc.smallWriter = true
	} else {
		brw.Writer.Reset(nc)
	}
	g.takeBuffered(brw.Reader)
	g.sock.setSocket(c)
	if g.sock.smallReader(c) {
		*brw.Reader = *bufio.NewReaderSize(g, readerBufSize)
	} else {
		brw.Reader.Reset(g)
	}
	g.br = brw.Reader
	w.nc, w.guard = nc, g
	// coder/websocket reads through g, which vets the peer's close frame.
	return g, brw, nil
}

// appendSwitchingProtocols appends the 101 response with header h to b.
// Values cannot break the response: line breaks become spaces and keys
// that are not tokens are skipped, as net/http does.
func appendSwitchingProtocols(b []byte, h http.Header) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\n"...)
	for k, vs := range h {
		if !validHeaderKey(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				if c := v[i]; c == '\r' || c == '\n' {
					b = append(b, ' ')
				} else {
					b = append(b, c)
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
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

// netConn wraps the hijacked connection: every byte of the WebSocket
// goes through it, whoever frames it.
//
// mu is the wire: it is held across every write to the socket, so frames
// stay whole and in order. Data frames are written by writeMessages when
// no extension was negotiated (direct mode) and by coder/websocket
// otherwise; control frames are always written by coder/websocket,
// through Write.
//
// A control frame must never wait for the wire: coder/websocket closes
// the socket when a control frame takes longer than 5 s (or its caller's
// context) to write, and it writes pongs from inside its reader, so a
// waiting pong would block reads too. In direct mode a ping or pong that
// finds the wire busy is left in a slot (ctrl) and Write returns at once;
// whoever holds the wire writes the slot at the next frame boundary (see
// unlockWire), and writeMessages cuts large messages into frames so that
// boundaries come often. A close frame waits for the boundary instead,
// since coder/websocket may drop the socket as soon as Write returns.
//
// Every real write carries a deadline refreshed on progress, so a peer
// that stops reading cannot block a writer for longer than writeTimeout.
type netConn struct {
	net.Conn
	writeTimeout time.Duration
	onClose      func()
	conn         *Conn // for logging a broken assumption about coder/websocket

	mu        sync.Mutex // the wire; guards the fields below it
	corked    int        // between cork and uncork, writes go to batch
	batch     *[]byte
	closeSent bool // a close frame was written: no data may follow
	noRaw     bool // the descriptor cannot be written directly (raw, below)

	// direct is set when no extension was negotiated: data frames are
	// then written by writeMessages, and coder/websocket only writes
	// control frames, each complete in one Write (checked: coder.go).
	// smallWriter: Hijack gave coder/websocket a writer of
	// writerBufSize bytes, having seen no extension in the response
	// (assumption 14). It must agree with direct. Both are set before
	// the connection is shared. (The bools sit together: a held
	// connection's guardedConn fits a smaller size class; see
	// TestGuardedConnSizeClass.)
	direct      bool
	smallWriter bool

	ctrlMu      sync.Mutex   // guards ctrl
	ctrl        *controlSlot // control frames waiting for the wire
	ctrlPending atomic.Bool  // ctrl is not nil: read without ctrlMu at every boundary
	closed      atomic.Bool  // Close has run (closeOnce, below); here to fill a gap

	// The send on the wire, for aborting it when its context ends
	// (write.go). abortReq is set only while that send holds the wire.
	abortMu  sync.Mutex
	onWire   *sendAbort
	abortReq atomic.Bool
	sendMu   sync.Mutex // serialises sends through coder/websocket (not direct)

	closeOnce  sync.Once
	written    atomic.Int64 // bytes handed to the socket, for the keepalive
	deadlineAt atomic.Int64 // when the write deadline was last moved (ns since monoStart, plus 1); 0: moved into the past

	// A detached connection's registration with the poller
	// (poll_linux.go), once it has been idle; Close ends it.
	poll atomic.Pointer[pollReg]

	// The socket's descriptor for tryWriteMessages (trysend.go), found
	// at its first use (noRaw: not found); guarded by mu.
	raw        syscall.RawConn
	rawWriteFn func(fd uintptr) // c.rawWrite, made once
	rawBuf     []byte           // what rawWrite writes
	rawN       int              // what it wrote
}

const (
	// maxFramePayload is the largest frame writeMessages writes: a
	// larger message is sent as several frames (RFC 6455, section 5.4),
	// so that a control frame never waits for more than one frame.
	maxFramePayload = 64 << 10

	// segmentSize is how much writeMessages gathers before writing to
	// the socket: a batch of small messages costs one system call, and
	// a large one is written in frame-aligned pieces, between which the
	// control slot is flushed.
	segmentSize = 64 << 10

	maxPooledBatch = 1 << 20
)

// batchPool holds batch buffers, so an idle connection keeps none and a
// burst does not leave its largest buffer behind.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// controlSlot holds the control frames waiting for the wire: the latest
// pong (RFC 6455, section 5.5.3, allows answering only the latest ping),
// the latest ping and the close frame, written in that order. It exists
// only while a frame waits, so an idle connection keeps none.
type controlSlot struct {
	frames [3][maxControlFrame]byte
	lens   [3]uint8
	out    [3 * maxControlFrame]byte
}

var slotPool = sync.Pool{New: func() any { return new(controlSlot) }}

// slotIndex is where a control frame with opcode op waits.
func slotIndex(op byte) int {
	switch op {
	case opPong:
		return 0
	case opPing:
		return 1
	}
	return 2
}

func (c *netConn) Write(p []byte) (int, error) {
	if c.direct {
		return c.writeControl(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked > 0 {
		if c.batch == nil {
			c.batch = batchPool.Get().(*[]byte)
		}
		*c.batch = append(*c.batch, p...)
		return len(p), nil
	}
	n, err := c.writeLocked(p, true)
	if err == errNotSent {
		// coder/websocket cannot take a frame back either: its send
		// is aborted, and so is the connection.
		c.Close()
		err = net.ErrClosed
	}
	return n, err
}

// writeControl writes a control frame from coder/websocket in direct
// mode. Anything else breaks the frame stream, so it is refused loudly
// and the connection closed before a byte of it is written.
func (c *netConn) writeControl(p []byte) (int, error) {
	op, ok := parseControlFrame(p)
	if !ok {
		err := errNotOneControlFrame(p)
		if c.conn != nil {
			c.conn.logBroken(err)
		}
		c.Close()
		return 0, err
	}
	n := len(p)
	c.ctrlMu.Lock()
	s := c.ctrl
	if s == nil {
		s = slotPool.Get().(*controlSlot)
		c.ctrl = s
	}
	i := slotIndex(op)
	s.lens[i] = uint8(copy(s.frames[i][:], p))
	c.ctrlPending.Store(true)
	c.ctrlMu.Unlock()
	if op == opClose {
		// coder/websocket may close the socket as soon as this returns
		// (write.go: it does when the peer's close was already read):
		// wait for the frame boundary, where the writer on the wire
		// writes this frame and stops.
		c.mu.Lock()
	} else if !c.mu.TryLock() {
		// The holder of the wire writes the frame at its next frame
		// boundary, or when it lets go (unlockWire).
		return n, nil
	}
	err := c.flushControlLocked()
	closeSent := c.closeSent
	c.unlockWire()
	if err == nil && op == opClose && !closeSent {
		err = net.ErrClosed
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// flushControlLocked writes the control frames waiting in the slot. The
// caller holds the wire, at a frame boundary.
func (c *netConn) flushControlLocked() error {
	if !c.ctrlPending.Load() {
		return nil
	}
	c.ctrlMu.Lock()
	s := c.ctrl
	c.ctrl = nil
	c.ctrlPending.Store(false)
	c.ctrlMu.Unlock()
	if s == nil {
		return nil
	}
	out := s.out[:0]
	for i := range s.frames {
		out = append(out, s.frames[i][:s.lens[i]]...)
	}
	hasClose := s.lens[2] > 0
	s.lens = [3]uint8{}
	var err error
	switch {
	case c.closeSent:
		err = net.ErrClosed // coder/websocket writes nothing after its close; nor do we
	case c.closed.Load():
		err = net.ErrClosed
	default:
		_, err = c.writeLocked(out, false)
		if err == nil && hasClose {
			c.closeSent = true
		}
	}
	slotPool.Put(s)
	return err
}

// unlockWire lets go of the wire. A control frame left in the slot while
// the wire was held is written first: whoever queues a frame then fails
// to take the wire knows its holder will see the frame here.
func (c *netConn) unlockWire() {
	for {
		c.mu.Unlock()
		if !c.ctrlPending.Load() || !c.mu.TryLock() {
			return
		}
		c.flushControlLocked()
	}
}

// errNotSent reports a send whose context ended before any of it reached
// the wire: the connection is intact.
var errNotSent = errors.New("wsroute: send abandoned before it started")

// writeLocked writes p to the socket. The deadline is refreshed whenever
// the write makes progress: the timeout is for a stalled peer, not a
// large batch. A failed write leaves a partial frame on the wire, so the
// connection is closed. With abortable set, the send on the wire (see
// sendAbort) stops when its context ends: errNotSent if nothing of p was
// written, else the connection is closed.
func (c *netConn) writeLocked(p []byte, abortable bool) (int, error) {
	total := 0
	for {
		if c.writeTimeout > 0 {
			c.refreshDeadline()
		}
		// Checked after the deadline is set: an abort that comes later
		// sets the deadline in the past, so either way the write stops.
		if abortable && c.abortReq.Load() {
			if total == 0 {
				return 0, errNotSent
			}
			c.Close()
			return total, net.ErrClosed
		}
		n, err := c.Conn.Write(p)
		total += n
		c.written.Add(int64(n))
		if err == nil {
			return total, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if abortable && c.abortReq.Load() && total == 0 {
				return 0, errNotSent
			}
			if n > 0 && n < len(p) && !(abortable && c.abortReq.Load()) {
				p = p[n:]
				continue
			}
		}
		c.Close()
		return total, err
	}
}

// refreshDeadline moves the write deadline to writeTimeout from now,
// unless it was moved there less than a 64th of writeTimeout ago: moving
// it updates a runtime timer, which cost 4% of the server's CPU in an
// echo benchmark when done for every message. A stalled write therefore
// fails after between 63/64 of writeTimeout and writeTimeout. The caller
// holds the wire.
//
// deadlineAt is stored before the deadline is set, and an abort (which
// sets it in the past) zeroes it after: whatever the interleaving, a
// deadline in the past is never taken for a fresh one by the next send.
func (c *netConn) refreshDeadline() {
	now := time.Now()
	t := int64(now.Sub(monoStart)) + 1 // monotonic, never 0
	if last := c.deadlineAt.Load(); last != 0 && t-last < int64(c.writeTimeout>>6) {
		return
	}
	c.deadlineAt.Store(t)
	c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
}

// monoStart is what deadlineAt counts from: a monotonic clock reading, so
// that a step of the wall clock cannot make an old deadline look fresh.
var monoStart = time.Now()

// writeMessages writes msgs as unmasked frames (servers never mask). It
// is the data path when no extension was negotiated: coder/websocket's
// own Write takes two channel-based locks and a flush per message, which
// cost more than the system call that a batch shares. Messages over
// maxFramePayload are fragmented; the frames are gathered into writes of
// about segmentSize, and control frames that came meanwhile are written
// between them. a, when not nil, is the send's abort (write.go).
//
// It returns errNotSent if a's context ended before anything was
// written; any other error has closed the connection, or found it
// closed.
func (c *netConn) writeMessages(msgs []Message, a *sendAbort) error {
	c.mu.Lock()
	defer c.unlockWire()
	if c.closeSent || c.closed.Load() {
		return net.ErrClosed
	}
	if a != nil {
		if !c.startSend(a) {
			return errNotSent
		}
		defer c.endSend()
	}
	b := batchPool.Get().(*[]byte)
	buf := (*b)[:0]
	wrote := false
	var err error
	for _, m := range msgs {
		op, data := byte(m.Type), m.Data
		for {
			n := min(len(data), maxFramePayload)
			fin := n == len(data)
			buf = appendFrameHeader(buf, op, fin, n)
			buf = append(buf, data[:n]...)
			data = data[n:]
			op = opContinuation
			if len(buf) >= segmentSize {
				err = c.writeSegment(buf, a != nil, wrote)
				wrote = true
				buf = buf[:0]
				if err != nil {
					break
				}
			}
			if fin {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err == nil && len(buf) > 0 {
		err = c.writeSegment(buf, a != nil, wrote)
	}
	if cap(buf) <= maxPooledBatch {
		*b = buf[:0]
		batchPool.Put(b)
	}
	return err
}

// writeSegment writes whole frames of a send, after the control frames
// that came while the send held the wire. wrote says whether earlier
// segments of the send are on the wire: an abort then closes the
// connection, since a message may be cut.
func (c *netConn) writeSegment(seg []byte, abortable, wrote bool) error {
	if err := c.flushControlLocked(); err != nil {
		return err
	}
	if c.closeSent {
		// The close frame went out at this boundary: the rest of the
		// send may not follow it.
		return net.ErrClosed
	}
	_, err := c.writeLocked(seg, abortable)
	if err == errNotSent && wrote {
		c.Close()
		return net.ErrClosed
	}
	return err
}

// appendFrameHeader appends the header of an unmasked frame (RFC 6455,
// section 5.2).
func appendFrameHeader(b []byte, op byte, fin bool, n int) []byte {
	if fin {
		op |= 0x80
	}
	b = append(b, op)
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
		_, err = c.writeLocked(*b, true)
		if err == errNotSent {
			// coder/websocket believes these frames written: the
			// connection cannot go on without them.
			c.Close()
			err = net.ErrClosed
		}
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
		// An idle detached connection has no reader to see the socket
		// close, and the kernel tells the poller nothing: end its
		// registration first (no epoll_ctl may come after the close),
		// then start the reader that ends the connection.
		r := c.poll.Load()
		wake := r != nil && r.close()
		err = c.Conn.Close()
		if c.onClose != nil {
			c.onClose()
		}
		if wake {
			go r.c.readPolled(r)
		}
	})
	return err
}
