package natsbroker

import (
	"encoding/binary"
	"fmt"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// The wire format of a hub.Envelope, on a core NATS subject and in the
// history stream alike, version 1:
//
//	byte     version, 1
//	byte     message type: 1 text, 2 binary
//	uvarint  length of Origin, then its bytes
//	uvarint  length of Room, then its bytes
//	uvarint  length of Target, then its bytes
//	uvarint  length of Except, then its bytes
//	uvarint  length of the Position's Epoch, then its bytes (0: none)
//	uvarint  the Position's Offset (0: none)
//	uvarint  the message's sequence in the history stream (0: none)
//	rest     Data, possibly empty
//
// Every field is raw bytes, so binary messages and any room name travel
// unchanged. A node drops what it cannot decode and counts it in
// Stats.Malformed.
const (
	wireVersion = 1
	wireText    = 1
	wireBinary  = 2
)

// wireMsg is a decoded message: the envelope and, for a message of a
// room with history, its sequence in the history stream.
type wireMsg struct {
	env hub.Envelope
	seq uint64
}

func appendEnvelope(dst []byte, e hub.Envelope, seq uint64) []byte {
	typ := byte(wireText)
	if e.Type == wsroute.MessageBinary {
		typ = wireBinary
	}
	dst = append(dst, wireVersion, typ)
	for _, s := range [...]string{e.Origin, e.Room, e.Target, e.Except, e.Position.Epoch} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendUvarint(dst, e.Position.Offset)
	dst = binary.AppendUvarint(dst, seq)
	return append(dst, e.Data...)
}

// decodeEnvelope reads what appendEnvelope wrote. Data aliases p.
func decodeEnvelope(p []byte) (wireMsg, error) {
	var m wireMsg
	if len(p) < 2 {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(p))
	}
	if p[0] != wireVersion {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, p[0])
	}
	switch p[1] {
	case wireText:
		m.env.Type = wsroute.MessageText
	case wireBinary:
		m.env.Type = wsroute.MessageBinary
	default:
		return m, fmt.Errorf("%w: message type %d", ErrMalformed, p[1])
	}
	p = p[2:]
	var fields [5]string
	for i := range fields {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return m, fmt.Errorf("%w: field %d is cut short", ErrMalformed, i)
		}
		fields[i] = string(p[k : k+int(n)])
		p = p[k+int(n):]
	}
	var nums [2]uint64
	for i := range nums {
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return m, fmt.Errorf("%w: number %d is cut short", ErrMalformed, i)
		}
		nums[i] = n
		p = p[k:]
	}
	m.env.Origin, m.env.Room, m.env.Target, m.env.Except = fields[0], fields[1], fields[2], fields[3]
	m.env.Position = hub.Position{Epoch: fields[4], Offset: nums[0]}
	m.seq = nums[1]
	if m.env.Origin == "" || (m.env.Room != "" && m.env.Target != "") {
		return m, fmt.Errorf("%w: origin or destination missing", ErrMalformed)
	}
	if (m.env.Position.Epoch == "") != (m.env.Position.Offset == 0) {
		return m, fmt.Errorf("%w: half a position", ErrMalformed)
	}
	m.env.Data = p
	return m, nil
}
