package redisbroker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// appendEnvelopeV1 is version 1 of the wire format, which nodes of this
// version still read: no stream, no sequence number.
func appendEnvelopeV1(dst []byte, e hub.Envelope) []byte {
	return appendBody(append(dst, wireVersionV1, wireType(e.Type)), e)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	testCases := []struct {
		name string
		e    hub.Envelope
	}{
		{"text broadcast", hub.Envelope{Origin: "node-1", Room: "lobby", Type: wsroute.MessageText, Data: []byte("hello")}},
		{"binary, every byte value", hub.Envelope{Origin: "n", Room: "r", Type: wsroute.MessageBinary, Data: all}},
		{"except", hub.Envelope{Origin: "n", Room: "r", Except: "conn-42", Type: wsroute.MessageText, Data: []byte("x")}},
		{"target", hub.Envelope{Origin: "n", Target: "conn-7", Type: wsroute.MessageBinary, Data: []byte{0}}},
		{"empty message", hub.Envelope{Origin: "n", Room: "r", Type: wsroute.MessageText}},
		{"room with separators and non-ASCII", hub.Envelope{Origin: "n:1", Room: "a:b{c}\x00ü", Type: wsroute.MessageText, Data: []byte("é")}},
		{"long fields", hub.Envelope{Origin: strings.Repeat("o", 300), Room: strings.Repeat("r", 20000), Type: wsroute.MessageText, Data: bytes.Repeat([]byte("d"), 70000)}},
	}
	seqs := []seqNo{{0, 1}, {1, 127}, {0x0123456789abcdef, 128}, {math.MaxUint64, math.MaxUint64}}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, sq := range seqs {
				p := appendEnvelope(nil, tc.e, sq)
				if len(p) != envelopeSize(tc.e, sq) {
					t.Fatalf("encoded %d bytes, envelopeSize says %d", len(p), envelopeSize(tc.e, sq))
				}
				if p[0] != wireVersion {
					t.Fatalf("version %d, want %d", p[0], wireVersion)
				}
				got, gotSeq, err := decodeEnvelope(p)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !sameEnvelope(got, tc.e) || gotSeq != sq {
					t.Fatalf("got %+v %+v, want %+v %+v", got, gotSeq, tc.e, sq)
				}
				// The publisher's path: the body first, the header
				// once numbered, without a copy.
				sealed := sealEnvelope(newUnsealed(tc.e), wireType(tc.e.Type), sq)
				if !bytes.Equal(sealed, p) {
					t.Fatalf("sealEnvelope gave %x…, appendEnvelope %x…", sealed[:min(len(sealed), 24)], p[:min(len(p), 24)])
				}
			}
			// Version 1, as older nodes publish it, still reads.
			got, gotSeq, err := decodeEnvelope(appendEnvelopeV1(nil, tc.e))
			if err != nil {
				t.Fatalf("decode version 1: %v", err)
			}
			if !sameEnvelope(got, tc.e) || gotSeq != (seqNo{}) {
				t.Fatalf("version 1: got %+v %+v, want %+v unnumbered", got, gotSeq, tc.e)
			}
		})
	}
}

// The framing is small: what travels is the message plus a few bytes.
func TestEnvelopeIsCompact(t *testing.T) {
	t.Parallel()
	e := hub.Envelope{Origin: "Xk3d9aPq2LmN", Room: "lobby", Except: "Q1w2E3r4T5y6U7i8O9p0Aa", Type: wsroute.MessageText, Data: make([]byte, 128)}
	for _, tc := range []struct {
		n    uint64
		want int // bytes of the sequence number
	}{{1, 1}, {127, 1}, {128, 2}, {1 << 20, 3}, {math.MaxUint64, 10}} {
		overhead := envelopeSize(e, seqNo{stream: 42, n: tc.n}) - len(e.Data)
		want := 2 + 8 + tc.want + 4 + len(e.Origin) + len(e.Room) + len(e.Except)
		if overhead != want {
			t.Fatalf("sequence number %d: overhead %d bytes, want %d", tc.n, overhead, want)
		}
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	t.Parallel()
	e := hub.Envelope{Origin: "n", Room: "r", Type: wsroute.MessageText, Data: []byte("d")}
	valid := appendEnvelope(nil, e, seqNo{stream: 7, n: 1})
	validV1 := appendEnvelopeV1(nil, e)
	header := valid[:2+8+1] // version, type, stream, number
	testCases := []struct {
		name string
		p    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"one byte", []byte{2}, "too short"},
		{"future version", append([]byte{4}, valid[1:]...), "unknown version 4"},
		{"version 0", append([]byte{0}, valid[1:]...), "unknown version 0"},
		{"JSON from another publisher", []byte(`{"room":"r"}`), "unknown version"},
		{"unknown type", append([]byte{2, 9}, valid[2:]...), "unknown message type 9"},
		{"unknown type, version 1", append([]byte{1, 9}, validV1[2:]...), "unknown message type 9"},
		{"truncated stream", valid[:9], "truncated stream"},
		{"no sequence number", valid[:10], "bad sequence number"},
		{"sequence number 0", append(append([]byte(nil), valid[:10]...), append([]byte{0}, valid[11:]...)...), "sequence number 0"},
		{"sequence number overflow", append(append([]byte(nil), valid[:10]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "bad sequence number"},
		{"truncated lengths", header, "bad length"},
		{"truncated field", valid[:len(header)+1], "longer"},
		{"length past the end", append(append([]byte(nil), header...), 50, 'n'), "longer"},
		{"truncated lengths, version 1", validV1[:2], "bad length"},
		{"truncated field, version 1", validV1[:3], "longer"},
		{"length past the end, version 1", []byte{1, 1, 50, 'n'}, "longer"},
		{"varint overflow", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "bad length"},
		{"huge length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "longer"},
		{"no origin", appendEnvelope(nil, hub.Envelope{Room: "r"}, seqNo{n: 1}), "no origin"},
		{"neither room nor target", appendEnvelope(nil, hub.Envelope{Origin: "n"}, seqNo{n: 1}), "exactly one"},
		{"both room and target", appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "r", Target: "t"}, seqNo{n: 1}), "exactly one"},
		{"no origin, version 1", appendEnvelopeV1(nil, hub.Envelope{Room: "r"}), "no origin"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeMessage(tc.p)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeEnvelope feeds the decoder what any client of the Redis
// server could publish on the broker's channels: it must never panic,
// and whatever it accepts, in either version, must survive a round trip
// with its sequence number.
func FuzzDecodeEnvelope(f *testing.F) {
	room := hub.Envelope{Origin: "n", Room: "lobby", Except: "c", Type: wsroute.MessageText, Data: []byte("hello")}
	target := hub.Envelope{Origin: "n", Target: "c", Type: wsroute.MessageBinary, Data: []byte{0, 0xff}}
	f.Add(appendEnvelope(nil, room, seqNo{stream: 0x0123456789abcdef, n: 1}))
	f.Add(appendEnvelope(nil, target, seqNo{stream: math.MaxUint64, n: 300}))
	f.Add(appendEnvelope(nil, room, seqNo{n: math.MaxUint64}))
	f.Add(appendEnvelopeV1(nil, room))
	f.Add(appendEnvelopeV1(nil, target))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0x80})
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80})
	f.Add([]byte{2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte(`{"json":true}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, sq, err := decodeEnvelope(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if (p[0] == wireVersionV1) != (sq.n == 0) {
			t.Fatalf("version %d decoded with sequence number %d", p[0], sq.n)
		}
		var enc []byte
		if sq.n == 0 {
			enc = appendEnvelopeV1(nil, e)
		} else {
			enc = appendEnvelope(nil, e, sq)
			if len(enc) != envelopeSize(e, sq) {
				t.Fatalf("encoded %d bytes, envelopeSize says %d", len(enc), envelopeSize(e, sq))
			}
			if sealed := sealEnvelope(newUnsealed(e), wireType(e.Type), sq); !bytes.Equal(sealed, enc) {
				t.Fatalf("sealEnvelope and appendEnvelope differ for %+v %+v", e, sq)
			}
		}
		again, sq2, err := decodeEnvelope(enc)
		if err != nil {
			t.Fatalf("re-encoding %+v %+v: %v", e, sq, err)
		}
		if !sameEnvelope(again, e) || sq2 != sq {
			t.Fatalf("round trip changed %+v %+v into %+v %+v", e, sq, again, sq2)
		}
	})
}

func sameEnvelope(x, y hub.Envelope) bool {
	return x.Origin == y.Origin && x.Room == y.Room && x.Target == y.Target &&
		x.Except == y.Except && x.Type == y.Type && bytes.Equal(x.Data, y.Data)
}

// The sequence number of a version-2 header starts right after the
// stream: a reader of the format can find it without this package.
func TestSequenceNumberOffset(t *testing.T) {
	t.Parallel()
	p := appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "r"}, seqNo{stream: 0xa1b2c3d4e5f60718, n: 300})
	if got := binary.BigEndian.Uint64(p[2:10]); got != 0xa1b2c3d4e5f60718 {
		t.Fatalf("stream %x", got)
	}
	if n, _ := binary.Uvarint(p[10:]); n != 300 {
		t.Fatalf("sequence number %d", n)
	}
}

// Version 3: messages of rooms with history, with their position, and
// presence changes, survive a round trip; a stored message reads back
// with the position it is given.
func TestVersion3RoundTrip(t *testing.T) {
	t.Parallel()
	msgs := []hub.Envelope{
		{Origin: "n", Room: "lobby", Type: wsroute.MessageText, Data: []byte("hi"), Position: hub.Position{Epoch: "0005f3a1b2c3d4.abc", Offset: 1}},
		{Origin: "n:1", Room: "a{b}", Except: "c", Type: wsroute.MessageBinary, Data: []byte{0, 1, 0xff}, Position: hub.Position{Epoch: "e", Offset: math.MaxUint64}},
		{Origin: "n", Room: "r", Type: wsroute.MessageText, Position: hub.Position{Epoch: "e", Offset: 300}},
	}
	for _, e := range msgs {
		m, err := decodeMessage(appendHistoryMessage(nil, e))
		if err != nil {
			t.Fatalf("decode %+v: %v", e, err)
		}
		if !sameEnvelope(m.e, e) || m.e.Position != e.Position || m.e.Presence != nil {
			t.Fatalf("got %+v, want %+v", m.e, e)
		}
		stored := append(historyHead(e), historyBody(e)...)
		got, err := decodeEntry(stored, e.Position)
		if err != nil || !sameEnvelope(got, e) || got.Position != e.Position {
			t.Fatalf("stored form: got %+v %v, want %+v", got, err, e)
		}
	}
	for _, here := range []bool{false, true} {
		for _, ev := range []hub.PresenceEvent{
			{Joined: true, Member: hub.Member{ConnID: "c1", Node: "A", Meta: map[string]string{"name": "Ann", "": "é"}}},
			{Joined: false, Member: hub.Member{ConnID: "c2", Node: "A"}},
		} {
			if here && !ev.Joined {
				continue
			}
			m, err := decodeMessage(appendPresence(nil, "A", "room", "inst1", ev, here))
			if err != nil {
				t.Fatalf("decode %+v: %v", ev, err)
			}
			p := m.e.Presence
			if p == nil || m.e.Origin != "A" || m.e.Room != "room" || m.inst != "inst1" || m.here != here ||
				p.Joined != ev.Joined || p.Member.ConnID != ev.Member.ConnID || p.Member.Node != "A" || len(p.Member.Meta) != len(ev.Member.Meta) {
				t.Fatalf("got %+v %+v, want %+v", m, p, ev)
			}
			for k, v := range ev.Member.Meta {
				if p.Member.Meta[k] != v {
					t.Fatalf("meta %q: %q, want %q", k, p.Member.Meta[k], v)
				}
			}
		}
	}
}

func TestDecodeVersion3Rejects(t *testing.T) {
	t.Parallel()
	e := hub.Envelope{Origin: "n", Room: "r", Type: wsroute.MessageText, Data: []byte("d"), Position: hub.Position{Epoch: "e", Offset: 7}}
	valid := appendHistoryMessage(nil, e)
	pres := appendPresence(nil, "n", "r", "i", hub.PresenceEvent{Joined: true, Member: hub.Member{ConnID: "c", Node: "n"}}, false)
	testCases := []struct {
		name string
		p    []byte
		want string
	}{
		{"one byte", []byte{3}, "too short"},
		{"unknown kind", []byte{3, 9, 0}, "unknown kind 9"},
		{"no epoch", []byte{3, 1}, "bad length of epoch"},
		{"empty epoch", []byte{3, 1, 0, 1, 1, 'n', 1, 'r', 0}, "empty epoch"},
		{"offset 0", []byte{3, 1, 1, 'e', 0, 1, 'n', 1, 'r', 0}, "offset 0"},
		{"no room", appendHistoryMessage(nil, hub.Envelope{Origin: "n", Position: hub.Position{Epoch: "e", Offset: 1}}), "without origin or room"},
		{"truncated message", valid[:6], "longer"},
		{"truncated presence", pres[:len(pres)-1], "bad number of metadata pairs"},
		{"trailing bytes after presence", append(append([]byte(nil), pres...), 0), "bytes after"},
		{"too many metadata pairs", append(append([]byte(nil), pres[:len(pres)-1]...), 100), "metadata pairs"},
		{"presence without connection", appendPresence(nil, "n", "r", "i", hub.PresenceEvent{Member: hub.Member{Node: "n"}}, false), "without origin"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeMessage(tc.p)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, tc.want)
			}
		})
	}
	if _, err := decodeEntry([]byte{2, 1, 1, 'n', 1, 'r', 0}, e.Position); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a version-2 message read as a stored one: %v", err)
	}
}

// FuzzDecodeMessage feeds the decoder of every version what any client
// of the Redis server could publish on the broker's channels: it must
// never panic, and what it accepts must survive a round trip.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(appendHistoryMessage(nil, hub.Envelope{Origin: "n", Room: "lobby", Except: "c", Type: wsroute.MessageText, Data: []byte("hi"), Position: hub.Position{Epoch: "0005f3a1b2c3d4.abc", Offset: 42}}))
	f.Add(appendPresence(nil, "n", "r", "i", hub.PresenceEvent{Joined: true, Member: hub.Member{ConnID: "c", Node: "n", Meta: map[string]string{"k": "v"}}}, false))
	f.Add(appendPresence(nil, "n", "r", "i", hub.PresenceEvent{Member: hub.Member{ConnID: "c", Node: "n"}}, false))
	f.Add(appendPresence(nil, "n", "r", "i", hub.PresenceEvent{Joined: true, Member: hub.Member{ConnID: "c", Node: "n"}}, true))
	f.Add(appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "r", Data: []byte("x")}, seqNo{stream: 1, n: 2}))
	f.Add([]byte{3, 3, 1, 'n', 1, 'r', 1, 'i', 1, 'c', 1, 'n', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := decodeMessage(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var enc []byte
		switch {
		case p[0] != wireVersionV3:
			return // FuzzDecodeEnvelope checks versions 1 and 2
		case m.e.Presence != nil:
			enc = appendPresence(nil, m.e.Origin, m.e.Room, m.inst, *m.e.Presence, m.here)
		default:
			enc = appendHistoryMessage(nil, m.e)
		}
		again, err := decodeMessage(enc)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", m, err)
		}
		if m.e.Presence != nil {
			a, b := m.e.Presence, again.e.Presence
			if b == nil || a.Joined != b.Joined || a.Member.ConnID != b.Member.ConnID || a.Member.Node != b.Member.Node ||
				len(a.Member.Meta) != len(b.Member.Meta) || again.inst != m.inst || again.here != m.here {
				t.Fatalf("round trip changed %+v into %+v", m, again)
			}
			return
		}
		if !sameEnvelope(again.e, m.e) || again.e.Position != m.e.Position {
			t.Fatalf("round trip changed %+v into %+v", m.e, again.e)
		}
		stored := append(historyHead(m.e), historyBody(m.e)...)
		if got, err := decodeEntry(stored, m.e.Position); err != nil || !sameEnvelope(got, m.e) {
			t.Fatalf("stored form of %+v: %+v, %v", m.e, got, err)
		}
	})
}

// FuzzDecodeEntry feeds the decoder of stored messages what a stream
// entry could hold (anyone may XADD to the key).
func FuzzDecodeEntry(f *testing.F) {
	e := hub.Envelope{Origin: "n", Room: "r", Except: "c", Type: wsroute.MessageBinary, Data: []byte{1, 2}}
	f.Add(append(historyHead(e), historyBody(e)...))
	f.Add([]byte{3, 1})
	f.Add([]byte{3, 2, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		pos := hub.Position{Epoch: "e", Offset: 1}
		got, err := decodeEntry(p, pos)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got.Position != pos {
			t.Fatalf("position %+v", got.Position)
		}
		again, err := decodeEntry(append(historyHead(got), historyBody(got)...), pos)
		if err != nil || !sameEnvelope(again, got) {
			t.Fatalf("round trip changed %+v into %+v (%v)", got, again, err)
		}
	})
}
