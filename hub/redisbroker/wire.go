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
//
// Version 3 carries what version 2 cannot: the messages of rooms with
// history, which carry their Position instead of a sequence number, and
// presence changes. Plain messages stay in version 2, so that nodes of
// the previous version still hear them during a rolling upgrade:
//
//	byte     version, 3
//	byte     kind: 1 text message, 2 binary message, 3 join, 4 leave,
//	         5 still here (a join sent again after Redis lost it)
//
// then, for a message (kind 1 or 2):
//
//	uvarint  length of the epoch, then its bytes (never empty)
//	uvarint  offset, 1 or more
//	uvarint  length, then bytes: origin node, room, excepted connection
//	rest     Data
//
// and for a presence change (kind 3, 4 or 5):
//
//	uvarint  length, then bytes: origin node, room, presence instance,
//	         connection ID, the member's node
//	uvarint  number of metadata pairs, then for each: key, value, each
//	         a uvarint length and bytes
//
// A room's history stream stores each message as the version-3 message
// without its position (the stream entry's ID is the offset, the epoch
// has a key of its own): version, kind, then the three fields and Data.
// The Lua script of Append inserts the position when it publishes.
const (
	wireVersion   = 2
	wireVersionV1 = 1
	wireVersionV3 = 3

	wireText   = 1
	wireBinary = 2
	wireJoin   = 3
	wireLeave  = 4
	wireHere   = 5 // a join sent again (Redis lost the node's presence): news only to a node that thought it gone

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
		return e, sq, fmt.Errorf("%w: unknown version %d (this node reads 1 to 3)", ErrMalformed, version)
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

// wireMsg is what a message on a channel decodes to.
type wireMsg struct {
	e    hub.Envelope
	sq   seqNo  // version 2: the publisher's numbering; zero otherwise
	inst string // presence changes: the presence instance of the member's node
	here bool   // a join sent again (wireHere)
}

// decodeMessage parses a message in any version this node reads.
func decodeMessage(p []byte) (wireMsg, error) {
	if len(p) > 0 && p[0] == wireVersionV3 {
		return decodeV3(p)
	}
	e, sq, err := decodeEnvelope(p)
	return wireMsg{e: e, sq: sq}, err
}

// historyBody returns what follows the version and kind of a message of
// a room with history, position aside: origin, room, except and Data.
func historyBody(e hub.Envelope) []byte {
	n := len(e.Data)
	fields := [...]string{e.Origin, e.Room, e.Except}
	for _, s := range fields {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	p := make([]byte, 0, n)
	for _, s := range fields {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	return append(p, e.Data...)
}

// historyHead returns the version and kind of a message of a room with
// history.
func historyHead(e hub.Envelope) []byte {
	return []byte{wireVersionV3, wireType(e.Type)}
}

// appendHistoryMessage appends the version-3 wire form of e, a message
// of a room with history at e.Position, as Append's script publishes it.
func appendHistoryMessage(dst []byte, e hub.Envelope) []byte {
	dst = append(dst, historyHead(e)...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Position.Epoch)))
	dst = append(dst, e.Position.Epoch...)
	dst = binary.AppendUvarint(dst, e.Position.Offset)
	return append(dst, historyBody(e)...)
}

// appendPresence appends the version-3 wire form of a presence change;
// here marks a join sent again.
func appendPresence(dst []byte, origin, room, inst string, ev hub.PresenceEvent, here bool) []byte {
	kind := byte(wireLeave)
	switch {
	case ev.Joined && here:
		kind = wireHere
	case ev.Joined:
		kind = wireJoin
	}
	dst = append(dst, wireVersionV3, kind)
	for _, s := range [...]string{origin, room, inst, ev.Member.ConnID, ev.Member.Node} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ev.Member.Meta)))
	for k, v := range ev.Member.Meta {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// wireReader reads the fields of a message, remembering the first error.
type wireReader struct {
	p   []byte
	err error
}

func (r *wireReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.p)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
		return 0
	}
	r.p = r.p[k:]
	return n
}

func (r *wireReader) str(what string) string {
	n := r.uvarint("length of " + what)
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.p)) {
		r.err = fmt.Errorf("%w: %s is longer (%d) than the message", ErrMalformed, what, n)
		return ""
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	return s
}

// decodeV3 parses a version-3 message.
func decodeV3(p []byte) (wireMsg, error) {
	var m wireMsg
	if len(p) < 2 {
		return m, fmt.Errorf("%w: %d bytes, too short", ErrMalformed, len(p))
	}
	r := wireReader{p: p[2:]}
	switch p[1] {
	case wireText, wireBinary:
		epoch := r.str("epoch")
		off := r.uvarint("offset")
		if r.err == nil && epoch == "" {
			return m, fmt.Errorf("%w: empty epoch", ErrMalformed)
		}
		if r.err == nil && off == 0 {
			return m, fmt.Errorf("%w: offset 0", ErrMalformed)
		}
		e, err := decodeHistoryFields(p[1], &r)
		if err != nil {
			return m, err
		}
		e.Position = hub.Position{Epoch: epoch, Offset: off}
		m.e = e
		return m, nil
	case wireJoin, wireLeave, wireHere:
		origin, room := r.str("origin"), r.str("room")
		inst, conn, node := r.str("instance"), r.str("connection"), r.str("member node")
		n := r.uvarint("number of metadata pairs")
		if r.err == nil && n > uint64(len(r.p))/2 {
			return m, fmt.Errorf("%w: %d metadata pairs in %d bytes", ErrMalformed, n, len(r.p))
		}
		var meta map[string]string
		for i := uint64(0); i < n && r.err == nil; i++ {
			if meta == nil {
				meta = make(map[string]string, n)
			}
			k := r.str("metadata key")
			meta[k] = r.str("metadata value")
		}
		switch {
		case r.err != nil:
			return m, r.err
		case len(r.p) > 0:
			return m, fmt.Errorf("%w: %d bytes after a presence change", ErrMalformed, len(r.p))
		case origin == "" || room == "" || inst == "" || conn == "" || node == "":
			return m, fmt.Errorf("%w: presence change without origin, room, instance, connection or node", ErrMalformed)
		}
		m.inst, m.here = inst, p[1] == wireHere
		m.e = hub.Envelope{Origin: origin, Room: room, Presence: &hub.PresenceEvent{
			Joined: p[1] != wireLeave,
			Member: hub.Member{ConnID: conn, Node: node, Meta: meta},
		}}
		return m, nil
	}
	return m, fmt.Errorf("%w: unknown kind %d in version 3", ErrMalformed, p[1])
}

// decodeHistoryFields reads origin, room, except and Data of a message
// of a room with history.
func decodeHistoryFields(kind byte, r *wireReader) (hub.Envelope, error) {
	var e hub.Envelope
	e.Type = wsroute.MessageText
	if kind == wireBinary {
		e.Type = wsroute.MessageBinary
	}
	e.Origin, e.Room, e.Except = r.str("origin"), r.str("room"), r.str("except")
	switch {
	case r.err != nil:
		return e, r.err
	case e.Origin == "" || e.Room == "":
		return e, fmt.Errorf("%w: message without origin or room", ErrMalformed)
	}
	if len(r.p) > 0 {
		e.Data = r.p
	}
	return e, nil
}

// decodeEntry parses a message kept in a room's stream (version 3
// without the position), which it is given.
func decodeEntry(p []byte, pos hub.Position) (hub.Envelope, error) {
	if len(p) < 2 || p[0] != wireVersionV3 || (p[1] != wireText && p[1] != wireBinary) {
		return hub.Envelope{}, fmt.Errorf("%w: not a stored message", ErrMalformed)
	}
	r := wireReader{p: p[2:]}
	e, err := decodeHistoryFields(p[1], &r)
	e.Position = pos
	return e, err
}
