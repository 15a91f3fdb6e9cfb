package wsroute

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"unicode/utf8"
)

// chunkConn returns data in reads of the sizes cuts gives, then io.EOF.
type chunkConn struct {
	net.Conn
	data []byte
	cuts []byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.cuts) > 0 {
		n = min(n, int(c.cuts[0])+1)
		c.cuts = c.cuts[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// guardWant is what guardedConn must make of a whole stream, worked out
// on the stream at once: the bytes it passes on and the error after them.
func guardWant(in []byte) ([]byte, error) {
	for i := 0; i < len(in); {
		if in[i]&0x0f != opClose {
			if len(in)-i < 2 || len(in)-i < headerLen(in[i+1]) {
				break
			}
			h := headerLen(in[i+1])
			n := payloadLen(in[i : i+h])
			if n < 0 || n > int64(len(in)) {
				n = max(0, min(n, int64(len(in))))
			}
			i += h + int(n)
			continue
		}
		rest := in[i:]
		if len(rest) < 2 {
			return in[:i], io.EOF
		}
		n := int(rest[1] & 0x7f)
		if rest[0]&0xf0 != 0x80 || rest[1]&0x80 == 0 || n > 125 {
			return in, io.EOF
		}
		if len(rest) < 6+n {
			return in[:i], io.EOF
		}
		reason := make([]byte, 0, n)
		for j := 2; j < n; j++ {
			reason = append(reason, rest[6+j]^rest[2+j&3])
		}
		if !utf8.Valid(reason) {
			return in[:i], errCloseReasonNotUTF8
		}
		return in, io.EOF
	}
	return in, io.EOF
}

// frameEnds returns the offsets in in where a frame ends, up to the
// first close frame (the frames guardedConn scans).
func frameEnds(in []byte) map[int]bool {
	ends := map[int]bool{}
	for i := 0; i+2 <= len(in) && in[i]&0x0f != opClose; {
		hl := headerLen(in[i+1])
		if i+hl > len(in) {
			break
		}
		pl := payloadLen(in[i : i+hl])
		if pl < 0 || pl > int64(len(in)) {
			break
		}
		i += hl + int(pl)
		ends[i] = true
	}
	return ends
}

// FuzzGuardedConn: however the peer's bytes are split by the network and
// by the reader, guardedConn passes on exactly the bytes before a close
// frame whose reason is not UTF-8 and then fails, and passes everything
// on otherwise. On a detached connection no Read passes the end of a
// frame (toFrameEnd).
func FuzzGuardedConn(f *testing.F) {
	closeBad := []byte{0x88, 0x86, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2, 'o' ^ 3, 'k' ^ 4, 0xff ^ 1, 0xfe ^ 2}
	closeOK := []byte{0x88, 0x84, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2, 'o' ^ 3, 'k' ^ 4}
	text := []byte{0x81, 0x82, 0, 0, 0, 0, 'h', 'i'}
	long := append([]byte{0x82, 0xfe, 0x01, 0x00, 0, 0, 0, 0}, bytes.Repeat([]byte{0x88}, 256)...)
	for _, s := range [][]byte{closeBad, closeOK, append(text, closeBad...), append(long, closeBad...), append(text, closeOK...), {0x88}, {0x88, 0xfe, 0, 200}} {
		f.Add(s, []byte{0, 3, 1}, uint8(7), false)
		f.Add(s, []byte{0, 3, 1}, uint8(7), true)
	}
	f.Add(append(append(text, text...), closeOK...), []byte{}, uint8(255), true)
	f.Fuzz(func(t *testing.T, in, cuts []byte, bufSize uint8, detached bool) {
		wantOut, wantErr := guardWant(in)
		g := &guardedConn{netConn: netConn{Conn: &chunkConn{data: bytes.Clone(in), cuts: cuts}}}
		g.detached.Store(detached)
		ends := frameEnds(in)
		// Some of the stream arrives before the hijack.
		if len(cuts) > 0 {
			k := min(int(cuts[0]), len(in))
			g.netConn.Conn.(*chunkConn).data = g.netConn.Conn.(*chunkConn).data[k:]
			g.pre = bytes.Clone(in[:k])
		}
		var out []byte
		p := make([]byte, int(bufSize)+1)
		var err error
		for range 10 * (len(in) + 2) {
			var n int
			n, err = g.Read(p)
			if detached {
				for i := len(out) + 1; i < len(out)+n; i++ {
					if ends[i] {
						t.Fatalf("a Read of %d bytes at %d passed the end of a frame at %d", n, len(out), i)
					}
				}
			}
			out = append(out, p[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(out, wantOut) {
			t.Fatalf("passed on %x, want %x", out, wantOut)
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("error %v, want %v", err, wantErr)
		}
	})
}
