package wsroute

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
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

	pre   []byte   // bytes buffered by net/http before the hijack, read first
	held  []byte   // a close frame (and what came with it), held back
	skip  int64    // payload bytes left of the current frame
	hdr   [14]byte // the header being read
	nh    uint8    // bytes of hdr read
	state uint8
}

const (
	guardScanning = iota // reading frame headers, looking for a close frame
	guardHolding         // collecting a close frame in held
	guardPassing         // the close frame is valid (or coder/websocket will fail it): pass everything
	guardFailed          // the close frame's reason is not UTF-8: every Read fails
)

// takeBuffered moves the bytes br has read past the handshake request
// into g, and points br at g, so that those bytes are scanned too.
// coder/websocket reads whatever br still holds without going through
// the connection.
func (g *guardedConn) takeBuffered(br *bufio.Reader) {
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		g.pre = bytes.Clone(b)
		br.Reset(g)
	}
}

func (g *guardedConn) Read(p []byte) (int, error) {
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
		n, err := g.readSource(p)
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
		return n, nil
	}
	return g.netConn.Read(p)
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
