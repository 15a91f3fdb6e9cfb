package conformance

import (
	"bytes"
	"fmt"
	"strings"
)

// closeBy expects the client's close to be answered cleanly with one of
// codes (or with no code), after exactly events.
func closeBy(codes []int, events ...event) expect {
	if events == nil {
		events = none
	}
	return expect{ok: events, closedByMe: true, codes: codes, requireClean: true}
}

// closeFails expects a close frame from the client to be answered with
// code: the close is the client's, the handshake need not be clean.
func closeFails(code int) expect {
	return expect{ok: none, closedByMe: true, codes: []int{code}}
}

// 7.x: the closing handshake, close codes and reasons.
func closeCases() []tcase {
	normal := closePayload(1000, "")
	hw := textMsg("Hello World!")
	cs := []tcase{
		{id: "7.1.1", desc: "text, then close: the echo, then a clean close",
			script: func(s *session) { s.send(text("Hello World!")); s.close(normal) },
			want:   closeBy([]int{1000}, hw)},
		{id: "7.1.2", desc: "close twice: the second is ignored",
			script: func(s *session) { s.close(normal); s.close(normal) },
			want:   closeBy([]int{1000})},
		{id: "7.1.3", desc: "close, then ping: no pong after close",
			script: func(s *session) { s.close(normal); s.send(f(true, 0, opPing, hello)) },
			want:   closeBy([]int{1000})},
		{id: "7.1.4", desc: "close, then text: no echo after close",
			script: func(s *session) { s.close(normal); s.send(text(hello)) },
			want:   closeBy([]int{1000})},
		{id: "7.1.5", desc: "first fragment, close, last fragment: no echo",
			script: func(s *session) {
				s.send(f(false, 0, opText, "fragment1"))
				s.close(normal)
				s.send(f(true, 0, opContinuation, "fragment2"))
			},
			want: closeBy([]int{1000})},
		{id: "7.1.6", desc: "256 KiB text, text, close, ping: whether the echoes come first is up to the server",
			script: func(s *session) {
				s.send(text(strings.Repeat("BAsd7&jh23", 256<<10/10)), text("Hello World!"))
				s.close(normal)
				s.send(f(true, 0, opPing, ""))
			},
			want: expect{informational: true, closedByMe: true}},
		{id: "7.3.1", desc: "close with an empty payload",
			script: func(s *session) { s.close(nil) }, want: closeBy([]int{1000})},
		{id: "7.3.2", desc: "close with a 1-byte payload", script: func(s *session) { s.close([]byte{0x03}) }, want: closeFails(1002)},
		{id: "7.3.3", desc: "close 1000 without reason", script: func(s *session) { s.close(normal) }, want: closeBy([]int{1000})},
		{id: "7.3.4", desc: "close 1000 with a reason",
			script: func(s *session) { s.close(closePayload(1000, "Hello World!")) }, want: closeBy([]int{1000})},
		{id: "7.3.5", desc: "close 1000 with a reason of 123 bytes (the most that fits)",
			script: func(s *session) { s.close(closePayload(1000, strings.Repeat("*", 123))) }, want: closeBy([]int{1000})},
		{id: "7.3.6", desc: "close 1000 with a reason of 124 bytes: a control frame over 125 bytes",
			script: func(s *session) { s.close(closePayload(1000, strings.Repeat("*", 124))) }, want: closeFails(1002)},
		{id: "7.5.1", desc: "close with a reason that is not UTF-8",
			script: func(s *session) { s.close(closePayload(1000, kosme+"\xed\xa0\x80edited")) }, want: closeFails(1007)},
	}
	// 7.7.x: every code a peer may send is answered cleanly, with 1000 or
	// the same code. x7.7.x: 1012-1014, which IANA assigned after Autobahn's list.
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, tcase{id: fmt.Sprintf("7.7.%d", i+1), desc: fmt.Sprintf("close with valid code %d", code),
			script: func(s *session) { s.close(closePayload(code, "")) }, want: closeBy([]int{1000, code})})
	}
	for i, code := range []int{1012, 1013, 1014} {
		cs = append(cs, tcase{id: fmt.Sprintf("x7.7.%d", i+1), desc: fmt.Sprintf("close with IANA-registered code %d", code),
			script: func(s *session) { s.close(closePayload(code, "")) }, want: closeBy([]int{1000, code})})
	}
	// 7.9.x: codes no peer may send fail the connection with 1002.
	// x7.9.x: the rest of the reserved and unassigned ranges.
	// 7.13.x: codes above 4999 (INFORMATIONAL in Autobahn; judged here).
	invalid := []struct {
		id    string
		codes []int
	}{
		{"7.9", []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999}},
		{"x7.9", []int{1015, 1, 500, 1017, 1999}},
		{"7.13", []int{5000, 65535}},
	}
	for _, g := range invalid {
		for i, code := range g.codes {
			cs = append(cs, tcase{id: fmt.Sprintf("%s.%d", g.id, i+1), desc: fmt.Sprintf("close with invalid code %d", code),
				script: func(s *session) { s.close(closePayload(code, "")) }, want: closeFails(1002)})
		}
	}
	cs = append(cs,
		tcase{id: "x7.2", desc: "close with a valid reason of multi-byte UTF-8",
			script: func(s *session) { s.close(closePayload(1000, strings.Repeat(kosme, 11))) }, want: closeBy([]int{1000})},
		tcase{id: "x7.3", desc: "close in a frame written byte by byte",
			script: func(s *session) { s.closeChopped(1, closePayload(1001, "bye")) },
			want:   closeBy([]int{1000, 1001})},
		tcase{id: "x7.4", desc: "ping with 125 bytes right before close: the pong comes before the close",
			script: func(s *session) {
				s.send(maskedFrame(true, 0, opPing, bytes.Repeat([]byte{'x'}, 125)))
				s.close(normal)
			},
			want: closeBy([]int{1000}, pong(bytes.Repeat([]byte{'x'}, 125)))},
	)
	return cs
}
