package redisbroker

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

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
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := appendEnvelope(nil, tc.e)
			if len(p) != envelopeSize(tc.e) {
				t.Fatalf("encoded %d bytes, envelopeSize says %d", len(p), envelopeSize(tc.e))
			}
			got, err := decodeEnvelope(p)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !sameEnvelope(got, tc.e) {
				t.Fatalf("got %+v, want %+v", got, tc.e)
			}
		})
	}
}

// The framing is small: what travels is the message plus a few bytes.
func TestEnvelopeIsCompact(t *testing.T) {
	t.Parallel()
	e := hub.Envelope{Origin: "Xk3d9aPq2LmN", Room: "lobby", Except: "Q1w2E3r4T5y6U7i8O9p0Aa", Type: wsroute.MessageText, Data: make([]byte, 128)}
	overhead := envelopeSize(e) - len(e.Data)
	want := 2 + 4 + len(e.Origin) + len(e.Room) + len(e.Except)
	if overhead != want {
		t.Fatalf("overhead %d bytes, want %d", overhead, want)
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	t.Parallel()
	valid := appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "r", Type: wsroute.MessageText, Data: []byte("d")})
	testCases := []struct {
		name string
		p    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"one byte", []byte{1}, "too short"},
		{"future version", append([]byte{2}, valid[1:]...), "unknown version 2"},
		{"JSON from another publisher", []byte(`{"room":"r"}`), "unknown version"},
		{"unknown type", append([]byte{1, 9}, valid[2:]...), "unknown message type 9"},
		{"truncated lengths", valid[:2], "bad length"},
		{"truncated field", valid[:3], "longer"},
		{"length past the end", []byte{1, 1, 50, 'n'}, "longer"},
		{"varint overflow", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "bad length"},
		{"huge length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "longer"},
		{"no origin", appendEnvelope(nil, hub.Envelope{Room: "r"}), "no origin"},
		{"neither room nor target", appendEnvelope(nil, hub.Envelope{Origin: "n"}), "exactly one"},
		{"both room and target", appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "r", Target: "t"}), "exactly one"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeEnvelope(tc.p)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeEnvelope feeds the decoder what any client of the Redis
// server could publish on the broker's channels: it must never panic,
// and whatever it accepts must survive a round trip.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, hub.Envelope{Origin: "n", Room: "lobby", Except: "c", Type: wsroute.MessageText, Data: []byte("hello")}))
	f.Add(appendEnvelope(nil, hub.Envelope{Origin: "n", Target: "c", Type: wsroute.MessageBinary, Data: []byte{0, 0xff}}))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0x80})
	f.Add([]byte(`{"json":true}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decodeEnvelope(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := decodeEnvelope(appendEnvelope(nil, e))
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", e, err)
		}
		if !sameEnvelope(again, e) {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}

func sameEnvelope(x, y hub.Envelope) bool {
	return x.Origin == y.Origin && x.Room == y.Room && x.Target == y.Target &&
		x.Except == y.Except && x.Type == y.Type && bytes.Equal(x.Data, y.Data)
}
