package conformance

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// RSV bits as Autobahn numbers them: the frame's rsv field is the three
// bits RSV1 RSV2 RSV3, so RSV1 (the permessage-deflate bit) is 4.
const (
	rsv1 = 4
	rsv2 = 2
	rsv3 = 1
)

// maxServerFrame bounds the payload of a frame the server sends, so that a
// corrupt length cannot make the client allocate gigabytes.
const maxServerFrame = 64 << 20

// frame is one WebSocket frame as it is on the wire.
type frame struct {
	fin     bool
	rsv     byte // 0..7: RSV1 is 4, RSV2 2, RSV3 1
	opcode  byte // 0..15, reserved ones included: the client sends what it is told
	masked  bool
	key     [4]byte
	payload []byte // unmasked
}

// appendFrame appends f encoded, masking the payload with f.key when
// f.masked. The payload length uses the shortest of the 7-, 16- and
// 64-bit encodings, as section 5.2 requires.
func appendFrame(b []byte, f frame) []byte {
	b0 := f.opcode&0x0f | (f.rsv&7)<<4
	if f.fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	var m byte
	if f.masked {
		m = 0x80
	}
	switch n := len(f.payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !f.masked {
		return append(b, f.payload...)
	}
	b = append(b, f.key[:]...)
	start := len(b)
	b = append(b, f.payload...)
	mask(b[start:], f.key)
	return b
}

// mask XORs p with key (RFC 6455 section 5.3), eight bytes at a time:
// the suite masks megabytes, under the race detector.
func mask(p []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// errFrame marks a frame that breaks RFC 6455's encoding rules.
var errFrame = errors.New("malformed frame")

// readFrame reads one frame. It rejects what no endpoint may send: a
// payload length not in its shortest encoding, a 64-bit length with the
// top bit set, or one over maxPayload. It does not judge opcodes, RSV
// bits or masking: the caller knows what was negotiated.
func readFrame(r *bufio.Reader, maxPayload uint64) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{
		fin:    h[0]&0x80 != 0,
		rsv:    h[0] >> 4 & 7,
		opcode: h[0] & 0x0f,
		masked: h[1]&0x80 != 0,
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return frame{}, unexpected(err)
		}
		if n = uint64(binary.BigEndian.Uint16(l[:])); n <= 125 {
			return frame{}, fmt.Errorf("%w: length %d in the 16-bit encoding", errFrame, n)
		}
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return frame{}, unexpected(err)
		}
		n = binary.BigEndian.Uint64(l[:])
		switch {
		case n>>63 != 0:
			return frame{}, fmt.Errorf("%w: 64-bit length with its top bit set", errFrame)
		case n <= 0xffff:
			return frame{}, fmt.Errorf("%w: length %d in the 64-bit encoding", errFrame, n)
		}
	}
	if n > maxPayload {
		return frame{}, fmt.Errorf("%w: payload of %d bytes, over the client's %d", errFrame, n, maxPayload)
	}
	if f.masked {
		if _, err := io.ReadFull(r, f.key[:]); err != nil {
			return frame{}, unexpected(err)
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, unexpected(err)
	}
	if f.masked {
		mask(f.payload, f.key)
	}
	return f, nil
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF: the
// connection ended mid-frame, which is not a clean end.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (f frame) isControl() bool { return f.opcode&0x8 != 0 }
