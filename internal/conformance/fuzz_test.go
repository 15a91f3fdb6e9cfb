package conformance

import (
	"bufio"
	"bytes"
	"testing"
)

// frameSeeds are well-formed and malformed frames for the fuzz corpora.
func frameSeeds() [][]byte {
	key := [4]byte{1, 2, 3, 4}
	seeds := [][]byte{
		appendFrame(nil, frame{fin: true, opcode: opText, payload: []byte("hello")}),
		appendFrame(nil, frame{fin: true, opcode: opBinary, payload: make([]byte, 126)}),
		appendFrame(nil, frame{fin: true, opcode: opBinary, payload: make([]byte, 70000)}),
		appendFrame(nil, frame{fin: false, opcode: opText, masked: true, key: key, payload: []byte("frag")}),
		appendFrame(nil, frame{fin: true, opcode: opClose, payload: closePayload(1000, "bye")}),
		appendFrame(nil, frame{fin: true, rsv: rsv1, opcode: opText, payload: []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}),
		{0x81, 126, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}, // 16-bit length for 5 bytes
		{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0},        // top bit set
		{0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00},        // 64-bit length for 256 bytes
		{0x89, 0x7e, 0x00, 0x7e}, // ping over 125 bytes
	}
	return seeds
}

// FuzzReadFrame checks the client's frame parser on any bytes: it never
// panics nor allocates past its limit, and a frame it accepts encodes
// back to exactly the bytes it read (the shortest length encoding is
// the only one it accepts).
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := bytes.NewReader(data)
		br := bufio.NewReader(rd)
		fr, err := readFrame(br, 1<<16)
		if err != nil {
			return
		}
		consumed := len(data) - rd.Len() - br.Buffered()
		if got := appendFrame(nil, fr); !bytes.Equal(got, data[:consumed]) {
			t.Fatalf("frame %+v re-encodes to %x, read from %x", fr, got, data[:consumed])
		}
	})
}

// FuzzReadEvent feeds any bytes, as if from a server, to the client's
// message layer (fragments, control frames, close payloads, inflation,
// UTF-8): it reports events or an error, and never panics.
func FuzzReadEvent(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(true, s)
		f.Add(false, s)
	}
	f.Add(false, append(appendFrame(nil, frame{opcode: opText, payload: []byte("a")}),
		appendFrame(nil, frame{fin: true, opcode: opContinuation, payload: []byte("b")})...))
	f.Fuzz(func(t *testing.T, deflate bool, data []byte) {
		c := &client{br: bufio.NewReader(bytes.NewReader(data)), deflate: deflate,
			maxFrame: 1 << 16, maxMessage: 1 << 20}
		c.inflater.takeover = true
		for range 64 {
			e, err := c.readEvent()
			if err != nil {
				return
			}
			if e.kind == "message" && len(e.data) > c.maxMessage {
				t.Fatalf("message of %d bytes past the %d limit", len(e.data), c.maxMessage)
			}
		}
	})
}
