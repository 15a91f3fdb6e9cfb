package redisbroker

import (
	"encoding/binary"
	"fmt"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// The wire format of a hub.Envelope on a Redis channel, version 1:
//
//	byte     version, 1
//	byte     message type: 1 text, 2 binary
//	uvarint  length of Origin, then its bytes
//	uvarint  length of Room, then its bytes
//	uvarint  length of Target, then its bytes
//	uvarint  length of Except, then its bytes
//	rest     Data, possibly empty
//
// Lengths are unsigned LEB128 varints (encoding/binary.AppendUvarint).
// Every field is raw bytes, so binary messages and any room name travel
// unchanged; a 128-byte text broadcast from a 22-byte node name to a
// short room costs about 30 bytes of framing. Origin is never empty, and
// exactly one of Room and Target is set. A node that reads a version it
// does not know drops the message and counts it (Stats.Malformed): nodes
// of different versions must not share a Prefix.
const (
	wireVersion = 1

	wireText   = 1
	wireBinary = 2
)

// appendEnvelope appends the wire form of e to dst.
func appendEnvelope(dst []byte, e hub.Envelope) []byte {
	typ := byte(wireText)
	if e.Type == wsroute.MessageBinary {
		typ = wireBinary
	}
	dst = append(dst, wireVersion, typ)
	for _, s := range [...]string{e.Origin, e.Room, e.Target, e.Except} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, e.Data...)
}

// envelopeSize returns the length of e's wire form.
func envelopeSize(e hub.Envelope) int {
	n := 2 + len(e.Data)
	for _, s := range [...]string{e.Origin, e.Room, e.Target, e.Except} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// decodeEnvelope parses a message in the wire format. It reads data from
// the network, so it checks every length and never panics; Data aliases
// p.
func decodeEnvelope(p []byte) (hub.Envelope, error) {
	var e hub.Envelope
	if len(p) < 2 {
		return e, fmt.Errorf("%w: %d bytes, too short", ErrMalformed, len(p))
	}
	if p[0] != wireVersion {
		return e, fmt.Errorf("%w: unknown version %d (this node speaks %d)", ErrMalformed, p[0], wireVersion)
	}
	switch p[1] {
	case wireText:
		e.Type = wsroute.MessageText
	case wireBinary:
		e.Type = wsroute.MessageBinary
	default:
		return e, fmt.Errorf("%w: unknown message type %d", ErrMalformed, p[1])
	}
	p = p[2:]
	var fields [4]string
	for i := range fields {
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return e, fmt.Errorf("%w: bad length of field %d", ErrMalformed, i)
		}
		p = p[k:]
		if n > uint64(len(p)) {
			return e, fmt.Errorf("%w: field %d is longer (%d) than the message", ErrMalformed, i, n)
		}
		fields[i] = string(p[:n])
		p = p[n:]
	}
	e.Origin, e.Room, e.Target, e.Except = fields[0], fields[1], fields[2], fields[3]
	if e.Origin == "" {
		return e, fmt.Errorf("%w: no origin node", ErrMalformed)
	}
	if (e.Room == "") == (e.Target == "") {
		return e, fmt.Errorf("%w: exactly one of room and target must be set", ErrMalformed)
	}
	if len(p) > 0 {
		e.Data = p
	}
	return e, nil
}
