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
		{"future version", append([]byte{3}, valid[1:]...), "unknown version 3"},
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
			_, _, err := decodeEnvelope(tc.p)
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
