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

// FuzzGuardedConn: however the peer's bytes are split by the network and
// by the reader, guardedConn passes on exactly the bytes before a close
// frame whose reason is not UTF-8 and then fails, and passes everything
// on otherwise.
func FuzzGuardedConn(f *testing.F) {
	closeBad := []byte{0x88, 0x86, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2, 'o' ^ 3, 'k' ^ 4, 0xff ^ 1, 0xfe ^ 2}
	closeOK := []byte{0x88, 0x84, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2, 'o' ^ 3, 'k' ^ 4}
	text := []byte{0x81, 0x82, 0, 0, 0, 0, 'h', 'i'}
	long := append([]byte{0x82, 0xfe, 0x01, 0x00, 0, 0, 0, 0}, bytes.Repeat([]byte{0x88}, 256)...)
	for _, s := range [][]byte{closeBad, closeOK, append(text, closeBad...), append(long, closeBad...), append(text, closeOK...), {0x88}, {0x88, 0xfe, 0, 200}} {
		f.Add(s, []byte{0, 3, 1}, uint8(7))
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte, bufSize uint8) {
		wantOut, wantErr := guardWant(in)
		g := &guardedConn{netConn: netConn{Conn: &chunkConn{data: bytes.Clone(in), cuts: cuts}}}
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
