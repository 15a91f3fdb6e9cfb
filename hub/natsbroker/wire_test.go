package natsbroker_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

func TestWireRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []hub.Envelope{
		{Origin: "A", Room: "room", Type: wsroute.MessageText, Data: []byte("hi")},
		{Origin: "node with spaces", Room: "a.b.*>", Except: "c1", Type: wsroute.MessageBinary, Data: []byte{0, 1, 0xff}},
		{Origin: "A", Target: "conn", Type: wsroute.MessageText},
		{Origin: "A", Room: "h", Type: wsroute.MessageText, Data: []byte("x"), Position: hub.Position{Epoch: "e1", Offset: 1 << 40}},
	} {
		p := natsbroker.AppendEnvelope(nil, e, 77)
		got, seq, err := natsbroker.DecodeEnvelope(p)
		testutil.NoErr(t, err)
		g := got.(hub.Envelope)
		testutil.Check(t, g.Origin == e.Origin && g.Room == e.Room && g.Target == e.Target && g.Except == e.Except &&
			g.Type == e.Type && bytes.Equal(g.Data, e.Data) && g.Position == e.Position && seq == 77, "round trip: %+v, want %+v", g, e)
	}
	for _, p := range [][]byte{nil, {1}, {2, 1}, {1, 3}, {1, 1, 5, 'a'}, {1, 1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 'A', 0, 0, 0, 2, 'e', 'e', 0, 0}} {
		_, _, err := natsbroker.DecodeEnvelope(p)
		testutil.Check(t, errors.Is(err, natsbroker.ErrMalformed), "%q decoded: %v", p, err)
	}
}

// The decoder reads what any publisher on the broker's subjects sends:
// it never panics, and what it accepts encodes back to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(natsbroker.AppendEnvelope(nil, hub.Envelope{Origin: "A", Room: "r", Type: wsroute.MessageText, Data: []byte("x")}, 0))
	f.Add(natsbroker.AppendEnvelope(nil, hub.Envelope{Origin: "A", Room: "r", Type: wsroute.MessageBinary, Position: hub.Position{Epoch: "e", Offset: 3}}, 9))
	f.Add([]byte{1, 2, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		got, seq, err := natsbroker.DecodeEnvelope(p)
		if err != nil {
			return
		}
		again := natsbroker.AppendEnvelope(nil, got.(hub.Envelope), seq)
		g2, seq2, err := natsbroker.DecodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		e1, e2 := got.(hub.Envelope), g2.(hub.Envelope)
		if e1.Origin != e2.Origin || e1.Room != e2.Room || e1.Target != e2.Target || e1.Except != e2.Except ||
			e1.Position != e2.Position || e1.Type != e2.Type || !bytes.Equal(e1.Data, e2.Data) || seq != seq2 {
			t.Fatalf("round trip changed %+v into %+v", e1, e2)
		}
	})
}
