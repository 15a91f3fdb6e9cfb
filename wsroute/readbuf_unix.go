//go:build unix

package wsroute

import (
	"io"
	"os"
	"syscall"
)

// rawReadable: sockReader reads the descriptor itself on this system.
const rawReadable = true

// rawFill is called by the runtime's poller, through RawConn.Read, each
// time the socket may be readable. It borrows a pooled buffer only for
// the read system call itself: when nothing has come (EAGAIN) the buffer
// goes back before the poller waits, so a connection waiting for its
// peer holds none. It returns false to wait, true when done (at once
// when s.once is set).
func (s *sockReader) rawFill(fd uintptr) bool {
	dst := s.dst
	var b *[readBufSize]byte
	if len(dst) < readBufSize {
		b = readBufPool.Get().(*[readBufSize]byte)
		dst = b[:]
	} else if len(dst) > maxRawRead {
		dst = dst[:maxRawRead]
	}
	for {
		n, err := syscall.Read(int(fd), dst)
		switch {
		case err != nil:
			// A type assertion, not a comparison of interfaces: this
			// runs on every read.
			switch errno, _ := err.(syscall.Errno); errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if b != nil {
					readBufPool.Put(b)
				}
				// Not waiting (poll): done, with nothing read.
				return s.once
			}
			s.err = os.NewSyscallError("read", err)
		case n == 0:
			s.err = io.EOF
		default:
			s.n = int32(n)    // at most maxRawRead
			s.buf, b = b, nil // nil when read into dst itself
		}
		if b != nil {
			readBufPool.Put(b)
		}
		return true
	}
}
