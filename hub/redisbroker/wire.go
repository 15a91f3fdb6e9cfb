package redisbroker

import (
	"encoding/binary"
	"fmt"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// The wire format of a hub.Envelope on a Redis channel, version 2:
//
//	byte     version, 2
//	byte     message type: 1 text, 2 binary
//	8 bytes  stream, big-endian: which numbering the sequence number is in
//	uvarint  sequence number, 1 or more
//	uvarint  length of Origin, then its bytes
//	uvarint  length of Room, then its bytes
//	uvarint  length of Target, then its bytes
//	uvarint  length of Except, then its bytes
//	rest     Data, possibly empty
//
// Lengths and the sequence number are unsigned LEB128 varints
// (encoding/binary.AppendUvarint). Every field is raw bytes, so binary
// messages and any room name travel unchanged; a 128-byte text broadcast
// from a 22-byte node name to a short room costs about 40 bytes of
// framing. Origin is never empty, and exactly one of Room and Target is
// set.
//
// The publisher numbers its messages per channel: 1, 2, 3… in the order
// it publishes them, in a stream it picks at random when it starts
// numbering that channel (after an Open, or after the channel was idle
// for streamIdle). A receiver remembers, per channel and stream, the
// highest number it has seen: a number it has already seen is a
// duplicate (a PUBLISH go-redis sent again), a number further
// on than the next one means messages were lost in between. See seq.go.
//
// Version 1 was the same without the stream and the sequence number.
// This version still reads it, without numbering: duplicates and losses
// of a version-1 publisher go unnoticed. A node that reads a version it
// does not know drops the message and counts it (Stats.Malformed), so a
// version-1 node drops what this one publishes.
const (
	wireVersion   = 2
	wireVersionV1 = 1

	wireText   = 1
	wireBinary = 2

	// maxHeader is the longest header: version, type, stream and the
	// longest sequence number. Publish leaves that much room before the
	// body, and the publisher writes the header, once it has numbered
	// the message, right-aligned into it.
	maxHeader = 2 + 8 + binary.MaxVarintLen64
)

// seqNo places a message in its publisher's numbering of one channel.
// The zero value means not numbered (a version-1 message).
type seqNo struct {
	stream uint64 // random, picked by the publisher for this channel
	n      uint64 // 1, 2, 3… within the stream
}

func wireType(t wsroute.MessageType) byte {
	if t == wsroute.MessageBinary {
		return wireBinary
	}
	return wireText
}

// appendEnvelope appends the version-2 wire form of e, numbered sq, to
// dst. sq.n must not be 0.
func appendEnvelope(dst []byte, e hub.Envelope, sq seqNo) []byte {
	dst = appendHeader(dst, wireType(e.Type), sq)
	return appendBody(dst, e)
}

func appendHeader(dst []byte, typ byte, sq seqNo) []byte {
	dst = append(dst, wireVersion, typ)
	dst = binary.BigEndian.AppendUint64(dst, sq.stream)
	return binary.AppendUvarint(dst, sq.n)
}

// appendBody appends what follows the header: the four fields and Data.
func appendBody(dst []byte, e hub.Envelope) []byte {
	for _, s := range [...]string{e.Origin, e.Room, e.Target, e.Except} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, e.Data...)
}

// bodySize returns the length of appendBody's output.
func bodySize(e hub.Envelope) int {
	n := len(e.Data)
	for _, s := range [...]string{e.Origin, e.Room, e.Target, e.Except} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

// envelopeSize returns the length of e's wire form numbered sq.
func envelopeSize(e hub.Envelope, sq seqNo) int {
	return 2 + 8 + uvarintLen(sq.n) + bodySize(e)
}

// newUnsealed returns e's body after maxHeader bytes of room for the
// header, for sealEnvelope.
func newUnsealed(e hub.Envelope) []byte {
	p := make([]byte, maxHeader, maxHeader+bodySize(e))
	return appendBody(p, e)
}

// sealEnvelope writes the header of a message numbered sq into the room
// newUnsealed left, right-aligned against the body, and returns the
// message: a suffix of p, not a copy.
func sealEnvelope(p []byte, typ byte, sq seqNo) []byte {
	var h [maxHeader]byte
	hdr := appendHeader(h[:0], typ, sq)
	off := maxHeader - len(hdr)
	copy(p[off:], hdr)
	return p[off:]
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// decodeEnvelope parses a message in the wire format, version 2 or 1 (a
// version-1 message has a zero seqNo). It reads data from the network,
// so it checks every length and never panics; Data aliases p.
func decodeEnvelope(p []byte) (hub.Envelope, seqNo, error) {
	var (
		e  hub.Envelope
		sq seqNo
	)
	if len(p) < 2 {
		return e, sq, fmt.Errorf("%w: %d bytes, too short", ErrMalformed, len(p))
	}
	version := p[0]
	if version != wireVersion && version != wireVersionV1 {
		return e, sq, fmt.Errorf("%w: unknown version %d (this node reads %d and %d)", ErrMalformed, version, wireVersionV1, wireVersion)
	}
	switch p[1] {
	case wireText:
		e.Type = wsroute.MessageText
	case wireBinary:
		e.Type = wsroute.MessageBinary
	default:
		return e, sq, fmt.Errorf("%w: unknown message type %d", ErrMalformed, p[1])
	}
	p = p[2:]
	if version == wireVersion {
		if len(p) < 8 {
			return e, sq, fmt.Errorf("%w: truncated stream", ErrMalformed)
		}
		sq.stream = binary.BigEndian.Uint64(p)
		p = p[8:]
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return e, sq, fmt.Errorf("%w: bad sequence number", ErrMalformed)
		}
		if n == 0 {
			return e, sq, fmt.Errorf("%w: sequence number 0", ErrMalformed)
		}
		sq.n = n
		p = p[k:]
	}
	var fields [4]string
	for i := range fields {
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return e, sq, fmt.Errorf("%w: bad length of field %d", ErrMalformed, i)
		}
		p = p[k:]
		if n > uint64(len(p)) {
			return e, sq, fmt.Errorf("%w: field %d is longer (%d) than the message", ErrMalformed, i, n)
		}
		fields[i] = string(p[:n])
		p = p[n:]
	}
	e.Origin, e.Room, e.Target, e.Except = fields[0], fields[1], fields[2], fields[3]
	if e.Origin == "" {
		return e, sq, fmt.Errorf("%w: no origin node", ErrMalformed)
	}
	if (e.Room == "") == (e.Target == "") {
		return e, sq, fmt.Errorf("%w: exactly one of room and target must be set", ErrMalformed)
	}
	if len(p) > 0 {
		e.Data = p
	}
	return e, sq, nil
}
