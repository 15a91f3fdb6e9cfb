package conformance

import (
	"bytes"
	"fmt"
)

// allCases is the whole table, in Autobahn's order.
func allCases() []tcase {
	var cs []tcase
	cs = append(cs, framingCases()...)
	cs = append(cs, pingCases()...)
	cs = append(cs, reservedBitCases()...)
	cs = append(cs, opcodeCases()...)
	cs = append(cs, fragmentationCases()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, closeCases()...)
	cs = append(cs, limitCases()...)
	cs = append(cs, deflateCases()...)
	return cs
}

// echoed expects exactly events, then a clean close the client starts.
func echoed(events ...event) expect {
	if events == nil {
		events = none
	}
	return expect{ok: events, closedByMe: true, codes: []int{1000}, requireClean: true}
}

// fails expects the server to fail the connection with code (or by
// closing TCP) after sending exactly events.
func fails(code int, events ...event) expect {
	if events == nil {
		events = none
	}
	return expect{ok: events, codes: []int{code}}
}

// failsLater is fails where failing before events were sent is allowed
// too (NON-STRICT), as Autobahn allows in 3.x, 4.x and 5.15.
func failsLater(code int, events ...event) expect {
	e := fails(code, events...)
	e.nonStrict = none
	return e
}

func f(fin bool, rsv, opcode byte, payload string) frame {
	return maskedFrame(fin, rsv, opcode, []byte(payload))
}

func text(payload string) frame { return f(true, 0, opText, payload) }

const hello = "Hello, world!"

// 1.x: text and binary messages of every length encoding.
func framingCases() []tcase {
	var cs []tcase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	for i, n := range sizes {
		t := bytes.Repeat([]byte("*"), n)
		b := bytes.Repeat([]byte{0xfe}, n)
		cs = append(cs,
			tcase{id: fmt.Sprintf("1.1.%d", i+1), desc: fmt.Sprintf("text message of %d bytes", n),
				script: func(s *session) { s.message(opText, t, 0, 0) }, want: echoed(textBytes(t))},
			tcase{id: fmt.Sprintf("1.2.%d", i+1), desc: fmt.Sprintf("binary message of %d bytes", n),
				script: func(s *session) { s.message(opBinary, b, 0, 0) }, want: echoed(binMsg(b))},
		)
	}
	t := bytes.Repeat([]byte("*"), 65536)
	b := bytes.Repeat([]byte{0xfe}, 65536)
	cs = append(cs,
		tcase{id: "1.1.8", desc: "text message of 65536 bytes written in chops of 997",
			script: func(s *session) { s.message(opText, t, 0, 997) }, want: echoed(textBytes(t))},
		tcase{id: "1.2.8", desc: "binary message of 65536 bytes written in chops of 997",
			script: func(s *session) { s.message(opBinary, b, 0, 997) }, want: echoed(binMsg(b))},
	)
	return cs
}

// 2.x: pings and pongs.
func pingCases() []tcase {
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	p125 := bytes.Repeat([]byte{0xfe}, 125)
	p126 := bytes.Repeat([]byte{0xfe}, 126)
	tenPings := func(chop int) func(s *session) {
		return func(s *session) {
			for i := range 10 {
				s.sendChopped(chop, f(true, 0, opPing, fmt.Sprintf("payload-%d", i)))
			}
		}
	}
	var tenPongs []event
	for i := range 10 {
		tenPongs = append(tenPongs, pong(fmt.Appendf(nil, "payload-%d", i)))
	}
	big := payload(256<<10, true, 22)
	pingsDuringEcho := echoed(binMsg(big))
	pingsDuringEcho.anyOrder = true
	for i := range 20 {
		pingsDuringEcho.ok = append(pingsDuringEcho.ok, pong(fmt.Appendf(nil, "during-%d", i)))
	}
	var allSizes []event
	for n := range 126 {
		allSizes = append(allSizes, pong(bytes.Repeat([]byte{'p'}, n)))
	}
	return []tcase{
		{id: "2.1", desc: "ping without payload",
			script: func(s *session) { s.send(f(true, 0, opPing, "")) }, want: echoed(pong([]byte{}))},
		{id: "2.2", desc: "ping with a small text payload",
			script: func(s *session) { s.send(f(true, 0, opPing, hello)) }, want: echoed(pong([]byte(hello)))},
		{id: "2.3", desc: "ping with a small binary payload",
			script: func(s *session) { s.send(maskedFrame(true, 0, opPing, bin)) }, want: echoed(pong(bin))},
		{id: "2.4", desc: "ping with 125 bytes of payload",
			script: func(s *session) { s.send(maskedFrame(true, 0, opPing, p125)) }, want: echoed(pong(p125))},
		{id: "2.5", desc: "ping with 126 bytes of payload: over the control frame limit",
			script: func(s *session) { s.send(maskedFrame(true, 0, opPing, p126)) }, want: fails(1002)},
		{id: "2.6", desc: "ping with 125 bytes of payload written byte by byte",
			script: func(s *session) { s.sendChopped(1, maskedFrame(true, 0, opPing, p125)) }, want: echoed(pong(p125))},
		{id: "2.7", desc: "unsolicited pong without payload: ignored",
			script: func(s *session) { s.send(f(true, 0, opPong, "")) }, want: echoed()},
		{id: "2.8", desc: "unsolicited pong with payload: ignored",
			script: func(s *session) { s.send(f(true, 0, opPong, "unsolicited pong payload")) }, want: echoed()},
		{id: "2.9", desc: "unsolicited pong, then a ping: only the ping is answered",
			script: func(s *session) {
				s.send(f(true, 0, opPong, "unsolicited pong payload"), f(true, 0, opPing, "ping payload"))
			}, want: echoed(pong([]byte("ping payload")))},
		{id: "2.10", desc: "10 pings in a row: 10 pongs, in order", script: tenPings(0), want: echoed(tenPongs...)},
		{id: "2.11", desc: "10 pings in a row written byte by byte", script: tenPings(1), want: echoed(tenPongs...)},
		{id: "x2.2", desc: "20 pings while the server writes a 256 KiB echo: every frame whole, every ping answered",
			script: func(s *session) {
				s.message(opBinary, big, 0, 0)
				for i := range 20 {
					s.send(f(true, 0, opPing, fmt.Sprintf("during-%d", i)))
				}
			}, want: pingsDuringEcho},
		{id: "x2.1", desc: "pings with every payload length from 0 to 125",
			script: func(s *session) {
				for n := range 126 {
					s.send(maskedFrame(true, 0, opPing, bytes.Repeat([]byte{'p'}, n)))
				}
			}, want: echoed(allSizes...)},
	}
}

// 3.x: reserved bits without an extension that defines them.
func reservedBitCases() []tcase {
	hi := textMsg(hello)
	return []tcase{
		{id: "3.1", desc: "text message with RSV = 1",
			script: func(s *session) { s.send(f(true, 1, opText, hello)) }, want: fails(1002)},
		{id: "3.2", desc: "text, then text with RSV = 2, then ping",
			script: func(s *session) {
				s.send(text(hello), f(true, 2, opText, hello), f(true, 0, opPing, ""))
			}, want: failsLater(1002, hi)},
		{id: "3.3", desc: "text, then text with RSV = 3, then ping, frame by frame",
			script: func(s *session) {
				s.send(text(hello))
				s.send(f(true, 3, opText, hello))
				s.send(f(true, 0, opPing, ""))
			}, want: failsLater(1002, hi)},
		{id: "3.4", desc: "text, then text with RSV = 4 (RSV1), then ping, byte by byte",
			plainOnly: true, // with permessage-deflate RSV1 means "compressed"
			script: func(s *session) {
				s.sendChopped(1, text(hello))
				s.sendChopped(1, f(true, 4, opText, hello))
				s.sendChopped(1, f(true, 0, opPing, ""))
			}, want: failsLater(1002, hi)},
		{id: "3.5", desc: "binary message with RSV = 5",
			script: func(s *session) { s.send(maskedFrame(true, 5, opBinary, []byte{0, 1, 2, 3})) }, want: fails(1002)},
		{id: "3.6", desc: "ping with RSV = 6",
			script: func(s *session) { s.send(f(true, 6, opPing, hello)) }, want: fails(1002)},
		{id: "3.7", desc: "close with RSV = 7",
			script: func(s *session) { s.send(maskedFrame(true, 7, opClose, closePayload(1000, ""))) }, want: fails(1002)},
	}
}

// 4.x: reserved opcodes, data (3-7) and control (11-15).
func opcodeCases() []tcase {
	var cs []tcase
	hi := textMsg(hello)
	for i, base := range []byte{3, 11} {
		group := fmt.Sprintf("4.%d", i+1)
		kind := []string{"non-control", "control"}[i]
		cs = append(cs,
			tcase{id: group + ".1", desc: fmt.Sprintf("frame with reserved %s opcode %d", kind, base),
				script: func(s *session) { s.send(f(true, 0, base, "")) }, want: fails(1002)},
			tcase{id: group + ".2", desc: fmt.Sprintf("frame with reserved %s opcode %d and a payload", kind, base+1),
				script: func(s *session) { s.send(f(true, 0, base+1, "reserved opcode payload")) }, want: fails(1002)},
		)
		for j, op := range []byte{base + 2, base + 3, base + 4} {
			cs = append(cs, tcase{id: fmt.Sprintf("%s.%d", group, j+3),
				desc: fmt.Sprintf("text, then a frame with reserved %s opcode %d, then ping", kind, op),
				script: func(s *session) {
					s.send(text(hello), f(true, 0, op, "reserved opcode payload"), f(true, 0, opPing, ""))
				}, want: failsLater(1002, hi)})
		}
	}
	return cs
}

// 5.x: fragmentation.
func fragmentationCases() []tcase {
	frag := textMsg("fragment1fragment2")
	twoFragments := func(chop int, ping bool) func(s *session) {
		return func(s *session) {
			fs := []frame{f(false, 0, opText, "fragment1")}
			if ping {
				fs = append(fs, f(true, 0, opPing, "ping payload"))
			}
			fs = append(fs, f(true, 0, opContinuation, "fragment2"))
			if chop < 0 {
				for _, fr := range fs {
					s.send(fr)
				}
				return
			}
			s.sendChopped(chop, fs...)
		}
	}
	// chop: 0 one write, -1 frame by frame, 1 byte by byte.
	pingThenMsg := []event{pong([]byte("ping payload")), frag}
	nothingToContinue := func(fin bool, chop int) func(s *session) {
		return func(s *session) {
			fs := []frame{f(fin, 0, opContinuation, "non-continuation payload"), text(hello)}
			if chop < 0 {
				s.send(fs[0])
				s.send(fs[1])
				return
			}
			s.sendChopped(chop, fs...)
		}
	}
	fiveFragments := func(chop int) func(s *session) {
		return func(s *session) {
			// Wait for each pong before going on: the server answers a
			// ping in the middle of a message, not after it.
			s.sendChopped(chop, f(false, 0, opText, "fragment1"))
			s.sendChopped(chop, f(false, 0, opContinuation, "fragment2"))
			s.sendChopped(chop, f(true, 0, opPing, "pongme 1!"))
			s.waitEvents(1)
			s.sendChopped(chop, f(false, 0, opContinuation, "fragment3"))
			s.sendChopped(chop, f(false, 0, opContinuation, "fragment4"))
			s.sendChopped(chop, f(true, 0, opPing, "pongme 2!"))
			s.waitEvents(2)
			s.sendChopped(chop, f(true, 0, opContinuation, "fragment5"))
		}
	}
	five := []event{pong([]byte("pongme 1!")), pong([]byte("pongme 2!")), textMsg("fragment1fragment2fragment3fragment4fragment5")}
	twice := func(fs ...frame) func(s *session) {
		return func(s *session) { s.send(append(fs, fs...)...) }
	}
	return []tcase{
		{id: "5.1", desc: "ping fragmented into 2 frames",
			script: func(s *session) {
				s.send(f(false, 0, opPing, "fragment1"), f(true, 0, opContinuation, "fragment2"))
			}, want: fails(1002)},
		{id: "5.2", desc: "pong fragmented into 2 frames",
			script: func(s *session) {
				s.send(f(false, 0, opPong, "fragment1"), f(true, 0, opContinuation, "fragment2"))
			}, want: fails(1002)},
		{id: "5.3", desc: "text fragmented into 2 frames", script: twoFragments(0, false), want: echoed(frag)},
		{id: "5.4", desc: "text fragmented into 2 frames, frame by frame", script: twoFragments(-1, false), want: echoed(frag)},
		{id: "5.5", desc: "text fragmented into 2 frames, byte by byte", script: twoFragments(1, false), want: echoed(frag)},
		{id: "5.6", desc: "text fragmented into 2 frames with a ping between", script: twoFragments(0, true), want: echoed(pingThenMsg...)},
		{id: "5.7", desc: "5.6 frame by frame", script: twoFragments(-1, true), want: echoed(pingThenMsg...)},
		{id: "5.8", desc: "5.6 byte by byte", script: twoFragments(1, true), want: echoed(pingThenMsg...)},
		{id: "5.9", desc: "final continuation frame with nothing to continue, then text", script: nothingToContinue(true, 0), want: fails(1002)},
		{id: "5.10", desc: "5.9 frame by frame", script: nothingToContinue(true, -1), want: fails(1002)},
		{id: "5.11", desc: "5.9 byte by byte", script: nothingToContinue(true, 1), want: fails(1002)},
		{id: "5.12", desc: "non-final continuation frame with nothing to continue, then text", script: nothingToContinue(false, 0), want: fails(1002)},
		{id: "5.13", desc: "5.12 frame by frame", script: nothingToContinue(false, -1), want: fails(1002)},
		{id: "5.14", desc: "5.12 byte by byte", script: nothingToContinue(false, 1), want: fails(1002)},
		{id: "5.15", desc: "text in 2 fragments, then a continuation with nothing to continue, then text",
			script: func(s *session) {
				s.send(f(false, 0, opText, "fragment1"), f(true, 0, opContinuation, "fragment2"),
					f(false, 0, opContinuation, "fragment3"), f(true, 0, opText, "fragment4"))
			}, want: failsLater(1002, frag)},
		{id: "5.16", desc: "twice: continuation (non-final), text (non-final), continuation (final)",
			script: twice(f(false, 0, opContinuation, "fragment1"), f(false, 0, opText, "fragment2"), f(true, 0, opContinuation, "fragment3")),
			want:   fails(1002)},
		{id: "5.17", desc: "twice: continuation (final), text (non-final), continuation (final)",
			script: twice(f(true, 0, opContinuation, "fragment1"), f(false, 0, opText, "fragment2"), f(true, 0, opContinuation, "fragment3")),
			want:   fails(1002)},
		{id: "5.18", desc: "text fragmented into 2 frames that both say text: a new message mid-message",
			script: func(s *session) { s.send(f(false, 0, opText, "fragment1"), f(true, 0, opText, "fragment2")) },
			want:   fails(1002)},
		{id: "5.19", desc: "text in 5 fragments with 2 pings between, each pong awaited", script: fiveFragments(0), want: echoed(five...)},
		{id: "5.20", desc: "5.19 byte by byte", script: fiveFragments(1), want: echoed(five...)},
	}
}
