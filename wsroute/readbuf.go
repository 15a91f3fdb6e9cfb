package wsroute

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"syscall"
)

// The buffers of a connection. net/http hands a 4 KiB bufio.Reader and a
// 4 KiB bufio.Writer over at Hijack and keeps pointing at them while the
// handler runs; coder/websocket keeps them for the life of the
// connection. On an idle connection they are most of its heap, so Hijack
// replaces what they hold (assumptions 13 to 15 in coder.go):
//
//   - In direct mode coder/websocket writes only control frames, each
//     whole and flushed (assumption 3), so its writer needs room for one
//     control frame: writerBufSize. With an extension it writes data
//     frames too, and keeps its 4 KiB.
//   - It reads through a bufio.Reader of readerBufSize bytes over
//     sockReader, which reads the socket into a buffer borrowed from
//     readBufPool and returns it as soon as the bytes read are consumed:
//     an idle connection, waiting for its peer, holds no read buffer.
const (
	// writerBufSize holds one whole control frame (2 + 125 bytes).
	writerBufSize = maxControlFrame + 1

	// readerBufSize is the bufio.Reader coder/websocket reads frame
	// headers through (bufio's smallest); payloads of this size or more
	// bypass it. The socket is read in readBufSize pieces below it.
	readerBufSize = 16

	// readBufSize is the size of a pooled read buffer: what one read
	// system call may take, as net/http's reader did.
	readBufSize = 4 << 10

	// maxRawRead bounds one read system call into a caller's buffer, as
	// the net package does.
	maxRawRead = 1 << 30
)

// readBufPool holds the read buffers of connections with bytes pending.
var readBufPool = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// sockReader reads the socket under guardedConn. When the socket allows
// it (rawReadable), a read waits for the peer with no buffer at all and
// then reads what came into a pooled buffer, which is held only until
// those bytes are consumed; a read of readBufSize or more goes straight
// into the caller's buffer. Otherwise it is the socket's own Read. One
// goroutine reads at a time (coder/websocket reads under a lock).
type sockReader struct {
	buf  *[readBufSize]byte // borrowed while bytes read are pending
	r, w int32              // the pending bytes: buf[r:w]

	rc   syscall.RawConn       // nil: read through the net.Conn
	fill func(fd uintptr) bool // rawFill, bound once: no allocation per read
	dst  []byte                // the caller's buffer, during rc.Read
	n    int32                 // what rawFill read (at most maxRawRead)
	once bool                  // during poll: rawFill does not wait
	err  error                 // and the error it met
}

// setSocket prepares s for reading c, the hijacked connection.
func (s *sockReader) setSocket(c net.Conn) {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		// Only these exact types: a wrapper that embeds one may
		// change what Read returns, which reading the descriptor would
		// skip.
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return
	}
	if !rawReadable {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	s.rc = rc
	s.fill = s.rawFill
}

// smallReader reports whether coder/websocket can read c through a
// bufio.Reader of readerBufSize bytes without a system call per few
// bytes: sockReader reads the socket in large pieces, and a *tls.Conn
// reads whole records into buffers of its own.
func (s *sockReader) smallReader(c net.Conn) bool {
	if s.rc != nil {
		return true
	}
	_, ok := c.(*tls.Conn)
	return ok
}

// read reads the pending bytes, or the socket c.
func (s *sockReader) read(c net.Conn, p []byte) (int, error) {
	if s.buf == nil {
		if s.rc == nil || len(p) == 0 {
			return c.Read(p)
		}
		n, err := s.rawRead(c, p)
		if err != nil || s.buf == nil {
			return n, err // an error, or read into p itself
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += int32(n)
	if s.r == s.w {
		s.release()
	}
	return n, nil
}

// wait blocks until c has bytes to read and reads them into a pooled
// buffer, where they stay pending: a connection waiting for its peer
// holds no buffer. Only when rawReads.
func (s *sockReader) wait(c net.Conn) error {
	if s.buf != nil {
		return nil // bytes are pending already
	}
	_, err := s.rawRead(c, nil)
	return err
}

// poll is wait without waiting, for the detached readers' poller
// (poll_linux.go): it reads what c has into a pooled buffer, where it
// stays pending, and reports false if nothing had come. An error is
// what Read will meet; it counts as something that came.
func (s *sockReader) poll(c net.Conn) (bool, error) {
	if s.buf != nil {
		return true, nil
	}
	s.once = true
	_, err := s.rawRead(c, nil)
	s.once = false
	return s.buf != nil || err != nil, err
}

// rawRead reads the socket through RawConn.Read: into p when p takes
// readBufSize bytes or more, else into a pooled buffer left pending (it
// returns 0 then).
func (s *sockReader) rawRead(c net.Conn, p []byte) (int, error) {
	s.dst = p
	err := s.rc.Read(s.fill)
	s.dst = nil
	n, ferr := int(s.n), s.err
	s.n, s.err = 0, nil
	if err != nil {
		// Closed, or past the read deadline, before anything came.
		return 0, err
	}
	if ferr != nil {
		return 0, s.opError(c, ferr)
	}
	if s.buf != nil {
		s.r, s.w = 0, int32(n)
		return 0, nil
	}
	return n, nil
}

// peek returns the pending bytes, without consuming them.
func (s *sockReader) peek() []byte {
	if s.buf == nil {
		return nil
	}
	return s.buf[s.r:s.w]
}

// rawReads reports whether s reads the socket's descriptor itself.
func (s *sockReader) rawReads() bool { return s.rc != nil }

// pending reports whether s holds bytes read and not yet consumed.
func (s *sockReader) pending() bool { return s.buf != nil }

// release returns the drained read buffer to the pool.
func (s *sockReader) release() {
	readBufPool.Put(s.buf)
	s.buf, s.r, s.w = nil, 0, 0
}

// opError wraps a system call error as net.Conn's Read would.
func (s *sockReader) opError(c net.Conn, err error) error {
	if err == io.EOF {
		return err
	}
	return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
