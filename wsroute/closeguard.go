package wsroute

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// errCloseReasonNotUTF8 is the read error that stands for a peer's close
// frame whose reason is not valid UTF-8; Conn.readError fails the
// connection with 1007 on it.
var errCloseReasonNotUTF8 = errors.New("the peer's close frame has a reason that is not valid UTF-8")

// guardedConn is the hijacked connection as coder/websocket reads it. Its
// Read passes the peer's bytes on unchanged, except a close frame: that
// is held back until it is whole, and if its reason is not valid UTF-8,
// Read fails instead of returning it. coder/websocket answers a close
// frame by echoing its code and reason, but RFC 6455 §8.1 says an invalid
// reason fails the connection with 1007. Reading is the one place where
// this can be decided whatever was negotiated: with permessage-deflate,
// coder/websocket's echo may share a write with data frames.
//
// Only frame headers are parsed; payloads, compressed or not, are
// skipped. Once the first close frame has been passed on, the rest is
// not looked at: a peer sends nothing after its close frame. Read is
// called by one goroutine at a time (coder/websocket reads under a lock).
// The netConn shares this allocation, so the guard costs a connection no
// extra object.
type guardedConn struct {
	netConn

	pre   []byte        // bytes buffered by net/http before the hijack, read first
	br    *bufio.Reader // coder/websocket's reader over g (assumptions 16 and 18)
	sock  sockReader    // reads the socket, through a pooled buffer (readbuf.go)
	held  []byte        // a close frame (and what came with it), held back
	skip  int64         // payload bytes left of the current frame
	hdr   [14]byte      // the header being read
	nh    uint8         // bytes of hdr read
	state uint8

	// A detached connection between messages (detach.go): idle makes
	// Read answer errIdle rather than wait at a frame boundary, and
	// wait leaves what it read, or the error it met, in pre and preErr.
	// wait runs outside coder/websocket's read lock, so mu orders it
	// with Read (coder/websocket's close handshake reads on its own
	// goroutine, possibly from before the connection was detached).
	mu       sync.Mutex
	detached atomic.Bool // set once, before the first wait
	idle     bool
	framed   bool // Reads end at frame ends since the buffer was last empty (toFrameEnd)
	preErr   error
}

const (
	guardScanning = iota // reading frame headers, looking for a close frame
	guardHolding         // collecting a close frame in held
	guardPassing         // the close frame is valid (or coder/websocket will fail it): pass everything
	guardFailed          // the close frame's reason is not UTF-8: every Read fails
)

// takeBuffered moves the bytes br has read past the handshake request
// into g, so that those bytes are scanned too; the caller then points br
// at g. coder/websocket reads whatever br still holds without going
// through the connection.
func (g *guardedConn) takeBuffered(br *bufio.Reader) {
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		g.pre = bytes.Clone(b)
	}
}

func (g *guardedConn) Read(p []byte) (int, error) {
	// Always under mu, not only once detached: a Close from another
	// goroutine may start coder/websocket's close handshake, which
	// reads, just before the handler returns after Detach and the
	// reader starts to wait.
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detached.Load() && g.idle && g.atBoundary() {
		g.emptied()
		return 0, errIdle
	}
	for {
		switch g.state {
		case guardPassing:
			if len(g.held) > 0 {
				n := copy(p, g.held)
				g.held = g.held[n:]
				return n, nil
			}
			return g.readSource(p)
		case guardFailed:
			return 0, errCloseReasonNotUTF8
		}
		q := p
		if g.state == guardScanning && (g.sock.rawReads() || g.detached.Load()) {
			var err error
			if q, err = g.toFrameEnd(p); err != nil {
				return 0, err
			}
		}
		n, err := g.readSource(q)
		k := 0 // bytes of p to pass on now
		if g.state == guardScanning {
			k = g.scan(p[:n])
		}
		if k < n {
			g.state = guardHolding
			g.held = append(g.held, p[k:n]...)
			g.judge()
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

func (g *guardedConn) readSource(p []byte) (int, error) {
	if len(g.pre) > 0 {
		n := copy(p, g.pre)
		g.pre = g.pre[n:]
		if len(g.pre) == 0 {
			g.pre = nil // keep no buffer while idle
		}
		return n, nil
	}
	if err := g.preErr; err != nil {
		g.preErr = nil
		return 0, err
	}
	return g.sock.read(g.netConn.Conn, p)
}

// errIdle is what Read answers a detached connection's reader, between
// messages, when coder/websocket asks for a frame that has not begun to
// arrive: its Reader returns it without closing the connection
// (assumption 12 in coder.go), and the reader waits in wait, on a
// shallow stack, rather than deep in coder/websocket's read chain.
var errIdle = errors.New("wsroute: no frame has begun to arrive")

// emptyHook, when set (by a test), is called where wsroute relies on
// coder/websocket's read buffer being empty (assumptions 16 and 17), on
// the goroutine that reads.
var emptyHook atomic.Pointer[func(*guardedConn)]

// emptied calls emptyHook.
func (g *guardedConn) emptied() {
	if h := emptyHook.Load(); h != nil {
		(*h)(g)
	}
}

// toFrameEnd returns the part of p Read may fill: no byte past the end of
// the frame being read. coder/websocket's read buffer then never holds a
// byte of the next frame, so it is empty whenever a message has been read
// (assumption 17): a detached connection's reader can wait for the peer
// without looking at it, and readNext can read a one-frame message to
// its length, without the read that only finds its end (messageLen). It
// finds the end in the bytes pending, first reading the socket into the
// pooled buffer when nothing is pending and the header is still to
// come. Reads end at frame ends on a socket sockReader reads itself from
// the first Read, and on any detached connection from its first Read
// after the hand-over; coder/websocket's read buffer is empty then (16),
// and framed records that the rule holds from there on.
func (g *guardedConn) toFrameEnd(p []byte) ([]byte, error) {
	g.framed = true
	if g.skip == 0 && !g.pending() && g.sock.rawReads() {
		if err := g.sock.wait(g.netConn.Conn); err != nil {
			return nil, err
		}
	}
	if n := g.frameLeft(); n < int64(len(p)) {
		return p[:n], nil
	}
	return p, nil
}

// frameLeft is the number of bytes up to the end of the frame being read,
// as far as g knows: all of its payload once its header is read, else the
// rest of its header and, when the pending bytes hold the whole header,
// its payload.
func (g *guardedConn) frameLeft() int64 {
	if g.skip > 0 {
		return g.skip
	}
	h, nh := g.hdr, int(g.nh)
	b := g.peek()
	i := 0
	for nh < 2 || nh < headerLen(h[1]) {
		if i == len(b) {
			if nh < 2 {
				return int64(i + 2 - nh)
			}
			return int64(i + headerLen(h[1]) - nh)
		}
		h[nh] = b[i]
		nh++
		i++
	}
	return int64(i) + max(payloadLen(h[:nh]), 0)
}

// peek returns the bytes pending in g, or some of them, without
// consuming them: those readSource hands on first.
func (g *guardedConn) peek() []byte {
	if len(g.pre) > 0 {
		return g.pre
	}
	if g.preErr == nil {
		return g.sock.peek()
	}
	return nil
}

// atBoundary reports whether everything read so far ends at the end of a
// frame, with nothing left to hand on: coder/websocket, asking for more,
// has consumed it all and waits for the start of the next frame.
func (g *guardedConn) atBoundary() bool {
	return g.state == guardScanning && g.nh == 0 && g.skip == 0 && !g.pending()
}

// pending reports whether g holds bytes (or an error) read from the
// socket that Read has not handed on yet. Every buffer between the
// socket and Read must be counted here: a detached connection would
// otherwise wait for the peer with a message already read (wait; test:
// TestModesMessagesInOneWrite). sockReader's pooled buffer is one.
func (g *guardedConn) pending() bool {
	return len(g.pre) > 0 || g.preErr != nil || g.sock.pending()
}

// messageLen reports the length of the message whose first frame
// coder/websocket has just read the header of, when that frame is the
// whole message: final, uncompressed, text or binary, its header the last
// g read (framed reads hand on nothing past the frame being read).
func (g *guardedConn) messageLen() (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hdr
	if !g.framed || g.state != guardScanning || g.nh != 0 || h[0]&0xf0 != 0x80 {
		return 0, false
	}
	if op := h[0] & 0x0f; op != 0x1 && op != 0x2 {
		return 0, false
	}
	n := payloadLen(h[:headerLen(h[1])])
	return n, n >= 0
}

// framedReads reports whether Reads end at frame ends (toFrameEnd), so
// that coder/websocket's read buffer is empty after a message. It is
// called by the detached reader after a message, with the buffer as
// coder/websocket left it.
func (g *guardedConn) framedReads() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.framed {
		g.emptied()
	}
	return g.framed
}

// setIdle sets idle.
func (g *guardedConn) setIdle(idle bool) {
	g.mu.Lock()
	g.idle = idle
	g.mu.Unlock()
}

// wakeRead is what wait reads at once when the socket cannot be waited
// on without a buffer: a control frame, or the start of a message, whose
// rest coder/websocket reads.
const wakeRead = 128

// wait blocks until the peer sends something. It is called with few
// frames below it, so that the goroutine of an idle detached connection
// keeps its smallest stack, and only when coder/websocket's read buffer
// is known to be empty (readDetached): it never
// looks at that buffer, which coder/websocket's close handshake may be
// filling on another goroutine. If another read has moved past the frame
// boundary since, it returns at once. What it reads, or the error it
// meets, is Read's next answer. Where sockReader can wait with no buffer
// (readbuf.go), what comes stays pending in its pooled buffer.
func (g *guardedConn) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.atBoundary() {
		return
	}
	if g.sock.rawReads() {
		g.preErr = g.sock.wait(g.netConn.Conn)
		return
	}
	p := make([]byte, wakeRead)
	for {
		n, err := g.netConn.Read(p)
		if n > 0 || err != nil {
			g.pre, g.preErr = p[:n], err
			return
		}
	}
}

// poll is wait for a reader the poller started (poll_linux.go), when the
// socket was reported readable: it reads what came, without waiting, and
// reports false if nothing had (the reader then re-arms the poller).
func (g *guardedConn) poll() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.atBoundary() {
		return true
	}
	ready, err := g.sock.poll(g.netConn.Conn)
	if err != nil {
		g.preErr = err
	}
	return ready
}

// scan follows the frames in b and returns how many bytes of it come
// before a close frame, all of them if none starts in b.
func (g *guardedConn) scan(b []byte) int {
	for i := 0; i < len(b); {
		if g.skip > 0 {
			s := int(min(g.skip, int64(len(b)-i)))
			i += s
			g.skip -= int64(s)
			continue
		}
		if g.nh == 0 && b[i]&0x0f == opClose {
			return i
		}
		g.hdr[g.nh] = b[i]
		g.nh++
		i++
		if g.nh >= 2 && int(g.nh) == headerLen(g.hdr[1]) {
			g.skip = payloadLen(g.hdr[:g.nh])
			g.nh = 0
		}
	}
	return len(b)
}

// headerLen is the length of a frame header whose second byte is b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

// payloadLen is the payload length of the whole header h. A length with
// the top bit set comes out negative: coder/websocket fails the
// connection on that header, so what follows does not matter.
func payloadLen(h []byte) int64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return int64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		return int64(binary.BigEndian.Uint64(h[2:]))
	default:
		return int64(n)
	}
}

// judge decides on the close frame at the start of held once it is
// whole. A frame coder/websocket fails on its header (fragmented,
// unmasked, reserved bits, longer than 125 bytes) is passed on at once
// for it to do so.
func (g *guardedConn) judge() {
	h := g.held
	if len(h) < 2 {
		return
	}
	n := int(h[1] & 0x7f)
	if h[0]&0xf0 != 0x80 || h[1]&0x80 == 0 || n > 125 {
		g.state = guardPassing
		return
	}
	if len(h) < 6+n {
		return
	}
	if n > 2 {
		key := h[2:6]
		var reason [123]byte
		for i := range n - 2 {
			reason[i] = h[8+i] ^ key[(i+2)&3]
		}
		if !utf8.Valid(reason[:n-2]) {
			g.state = guardFailed
			g.held = nil
			return
		}
	}
	g.state = guardPassing
}
