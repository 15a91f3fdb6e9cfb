package conformance

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// Message sizes of Autobahn's 12.x and 13.x cases; the last number of a
// case id is the index in this list (from 1).
var deflateSizes = []int{16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072, 262144}

// corpus returns deterministic test data of a kind. Autobahn uses files
// (a JSON document, a bitmap, a novel, an HTML page, a PDF); these are
// generated to have the same character: structured and compressible, or
// not compressible at all.
func corpus(kind string, n int) []byte {
	r := rand.New(rand.NewPCG(12, uint64(len(kind))))
	words := []string{"the", "socket", "frame", "message", "deflate", "window", "echo", "close",
		"ping", "server", "client", "κόσμε", "Grüße", "naïve", "fragment", "payload"}
	var b bytes.Buffer
	for b.Len() < n {
		switch kind {
		case "json":
			fmt.Fprintf(&b, `{"id":%d,"name":%q,"tags":[%q,%q],"score":%.3f},`,
				r.IntN(100000), words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))], r.Float64())
		case "bitmap":
			// Long runs of a few values, as a black-and-white image.
			v := byte(r.IntN(2) * 255)
			b.Write(bytes.Repeat([]byte{v}, 1+r.IntN(40)))
		case "prose":
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" .,\n"[r.IntN(4)])
		case "html":
			w := words[r.IntN(len(words))]
			fmt.Fprintf(&b, "<div class=%q><p>%s %s</p></div>\n", w, w, words[r.IntN(len(words))])
		case "random":
			b.WriteByte(byte(r.Uint32()))
		}
	}
	out := b.Bytes()[:n]
	if kind != "bitmap" && kind != "random" {
		// A cut may split a code point: text messages stay UTF-8.
		out = bytes.ToValidUTF8(out, nil)
		out = append(out, bytes.Repeat([]byte{' '}, n-len(out))...)
	}
	return out
}

// deflateFamilies are 12.1 to 12.5: kind of data and message type.
var deflateFamilies = []struct {
	kind   string
	opcode byte
}{{"json", opText}, {"bitmap", opBinary}, {"prose", opText}, {"html", opText}, {"random", opBinary}}

// echoMany sends count compressed messages of size bytes cut from data
// and expects them back in order.
func echoMany(opcode byte, data []byte, size, count int) (func(*session), expect) {
	var msgs [][]byte
	for i := range count {
		off := (i * 7919) % (len(data) - size + 1)
		m := data[off : off+size]
		if opcode == opText {
			m = bytes.ToValidUTF8(m, []byte("?")) // a cut may split a code point
		}
		msgs = append(msgs, m)
	}
	var want []event
	for _, m := range msgs {
		want = append(want, msgOf(opcode, m))
	}
	return func(s *session) {
		for _, m := range msgs {
			s.compressed(opcode, m, 0)
		}
	}, echoed(want...)
}

// count scales Autobahn's 1000 messages per case down by size.
func count(size int) int {
	switch {
	case size <= 4096:
		return 6
	case size <= 16384:
		return 4
	}
	return 2
}

// The offers of Autobahn's 13.x: as Autobahn, every one lets the server
// ask for client_no_context_takeover and client_max_window_bits.
const offerBase = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

var offers13 = []string{
	offerBase,
	offerBase + "; server_no_context_takeover",
	offerBase + "; server_max_window_bits=8",
	offerBase + "; server_max_window_bits=15",
	offerBase + "; server_no_context_takeover; server_max_window_bits=8",
	offerBase + "; server_no_context_takeover; server_max_window_bits=15",
	offerBase + "; server_no_context_takeover; server_max_window_bits=8, " + offerBase + "; server_no_context_takeover, " + offerBase,
}

// 12.x, 13.x: permessage-deflate; x13.x: its failure modes.
func deflateCases() []tcase {
	var cs []tcase
	for fi, fam := range deflateFamilies {
		data := corpus(fam.kind, 300<<10)
		for _, si := range []int{1, 4, 7, 9} {
			if si == 9 && fam.kind != "json" && fam.kind != "random" {
				continue // 64 KiB for the most and the least compressible only
			}
			size := deflateSizes[si-1]
			script, want := echoMany(fam.opcode, data, size, count(size))
			cs = append(cs, tcase{id: fmt.Sprintf("12.%d.%d", fi+1, si), deflateOnly: true,
				desc:   fmt.Sprintf("%d compressed %s messages of %d bytes", count(size), fam.kind, size),
				script: script, want: want})
		}
	}
	json := corpus("json", 100<<10)
	for oi, offer := range offers13 {
		for _, si := range []int{1, 7} {
			size := deflateSizes[si-1]
			script, want := echoMany(opText, json, size, count(size))
			cs = append(cs, tcase{id: fmt.Sprintf("13.%d.%d", oi+1, si), deflateOnly: true, offer: offer,
				desc:   fmt.Sprintf("offer %q: %d compressed messages of %d bytes (a declined offer echoes uncompressed)", offer, count(size), size),
				script: script, want: want})
		}
	}

	prose := bytes.Repeat([]byte("compressible ASCII text, "), 200)[:4096]
	bomb := bytes.Repeat([]byte{0}, 1<<20)
	cs = append(cs,
		tcase{id: "x13.1", deflateOnly: true, desc: "ping with RSV1",
			script: func(s *session) { s.send(f(true, rsv1, opPing, hello)) }, want: fails(1002)},
		tcase{id: "x13.2", deflateOnly: true, desc: "close with RSV1",
			script: func(s *session) { s.send(maskedFrame(true, rsv1, opClose, closePayload(1000, ""))) }, want: fails(1002)},
		tcase{id: "x13.3", deflateOnly: true, desc: "compressed message whose continuation frame also has RSV1",
			script: func(s *session) {
				fs := s.c.messageFrames(opText, prose, 10, true)
				fs[1].rsv = rsv1
				s.send(fs...)
			}, want: fails(1002)},
		tcase{id: "x13.4", deflateOnly: true, desc: "RSV1 on data that is not deflate",
			script: func(s *session) { s.send(maskedFrame(true, rsv1, opBinary, []byte{0xff, 0xff, 0xff, 0xff})) },
			want:   expect{ok: none, codes: []int{1002, 1007}}},
		tcase{id: "x13.5", deflateOnly: true, desc: "compressed message in fragments of 7 bytes",
			script: func(s *session) { s.c.write(0, s.c.messageFrames(opText, prose, 7, true)...) }, want: echoed(textBytes(prose))},
		tcase{id: "x13.6", deflateOnly: true, desc: "compressed empty message",
			script: func(s *session) { s.compressed(opText, nil, 0) }, want: echoed(textMsg(""))},
		tcase{id: "x13.7", deflateOnly: true, desc: "compressed binary message with a ping between its fragments",
			script: func(s *session) {
				fs := s.c.messageFrames(opBinary, prose, 10, true)
				fs = append(fs[:1], append([]frame{f(true, 0, opPing, "mid")}, fs[1:]...)...)
				s.send(fs...)
			}, want: echoed(pong([]byte("mid")), binMsg(prose))},
		tcase{id: "x13.8", deflateOnly: true, desc: "compressed text that inflates to invalid UTF-8",
			script: func(s *session) { s.compressed(opText, []byte(kosme+"\xed\xa0\x80edited"), 0) }, want: fails(1007)},
		tcase{id: "x13.9", deflateOnly: true, path: pathLimited, desc: "1 MiB of zeros compressed to about 1 KiB, over the 64 KiB read limit once inflated",
			script: func(s *session) { s.compressed(opBinary, bomb, 0) }, want: fails(1009)},
		tcase{id: "x13.11", deflateOnly: true, offer: "permessage-deflate; x-unknown-parameter",
			desc: "an offer with an unknown parameter is declined (RFC 7692 section 5)",
			script: func(s *session) {
				if s.c.deflate {
					s.mark("accepted")
				}
				s.message(opText, prose[:64], 0, 0)
			}, want: echoed(textBytes(prose[:64]))},
		tcase{id: "x13.12", deflateOnly: true, offer: "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
			desc: "an offer with a parameter given twice is declined (RFC 7692 section 7)",
			script: func(s *session) {
				if s.c.deflate {
					s.mark("accepted")
				}
				s.message(opText, prose[:64], 0, 0)
			}, want: echoed(textBytes(prose[:64]))},
		tcase{id: "x13.13", deflateOnly: true, offer: "permessage-deflate; client_max_window_bits=16",
			desc: "an offer with an invalid client_max_window_bits value is declined (RFC 7692 section 7.1.2.2)",
			script: func(s *session) {
				if s.c.deflate {
					s.mark("accepted")
				}
				s.message(opText, prose[:64], 0, 0)
			}, want: echoed(textBytes(prose[:64]))},
		tcase{id: "x13.10", deflateOnly: true, desc: "uncompressed and compressed messages alternating",
			script: func(s *session) {
				s.message(opText, prose[:100], 0, 0)
				s.compressed(opText, prose[100:300], 0)
				s.message(opBinary, prose[:50], 0, 0)
				s.compressed(opText, prose[:300], 0)
			}, want: echoed(textBytes(prose[:100]), textBytes(prose[100:300]), binMsg(prose[:50]), textBytes(prose[:300]))},
	)
	return cs
}
