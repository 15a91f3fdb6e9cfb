package conformance

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// failFastWindow is how long 6.4.x waits, after the fragment that makes a
// message invalid, to see whether the server fails at once (OK) or only
// at the end of the message (NON-STRICT). Both pass.
const failFastWindow = 250 * time.Millisecond

// kosme is "κόσμε", Autobahn's (and Markus Kuhn's) sample of valid UTF-8.
const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

// utf8Vector is one sequence of the UTF-8 decoder tests.
type utf8Vector struct {
	valid bool
	s     string
}

// utf8Groups are the sequences of Markus Kuhn's UTF-8 decoder stress test
// in Autobahn's grouping: group i is Autobahn's case family 6.(i+5).
func utf8Groups() [][]utf8Vector {
	v := func(s ...string) []utf8Vector {
		var out []utf8Vector
		for _, x := range s {
			out = append(out, utf8Vector{true, x})
		}
		return out
	}
	bad := func(s ...string) []utf8Vector {
		var out []utf8Vector
		for _, x := range s {
			out = append(out, utf8Vector{false, x})
		}
		return out
	}
	var prefixes []utf8Vector // 6.6: every prefix of kosme
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, utf8Vector{utf8.ValidString(kosme[:i]), kosme[:i]})
	}
	var run strings.Builder // 6.12.8: every continuation byte
	for b := 0x80; b < 0xbf; b++ {
		run.WriteByte(byte(b))
	}
	var lonely []utf8Vector // 6.13: each start byte followed by a space
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var sb strings.Builder
		for b := r[0]; b < r[1]; b++ {
			sb.WriteByte(byte(b))
			sb.WriteByte(' ')
		}
		lonely = append(lonely, utf8Vector{false, sb.String()})
	}
	truncated := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var nonchars []utf8Vector // 6.22: noncharacters are valid UTF-8
	nonchars = append(nonchars, v("\xef\xbf\xbe", "\xef\xbf\xbf")...)
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // above U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				s := string([]byte{z1, z2, 0xbf, z3})
				if s != "\xf0\x8f\xbf\xbe" && s != "\xf0\x8f\xbf\xbf" { // overlong
					nonchars = append(nonchars, utf8Vector{true, s})
				}
			}
		}
	}
	return [][]utf8Vector{
		v("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme), // 6.5
		prefixes, // 6.6
		v("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"),                                                            // 6.7 first of each length
		bad("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"),                                                              // 6.8 5 and 6 bytes
		v("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"),                                                            // 6.9 last of each length
		bad("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"),                                          // 6.10 beyond U+10FFFF
		append(v("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), utf8Vector{false, "\xf4\x90\x80\x80"}), // 6.11
		bad("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80",
			"\x80\xbf\x80\xbf\x80\xbf", run.String()), // 6.12 unexpected continuation bytes
		lonely,                                  // 6.13
		bad(truncated...),                       // 6.14 last continuation byte missing
		bad(strings.Join(truncated, "")),        // 6.15 all of them in a row
		bad("\xfe", "\xff", "\xfe\xfe\xff\xff"), // 6.16 impossible bytes
		bad("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"),             // 6.17 overlong '/'
		bad("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"),             // 6.18 maximum overlong
		bad("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"),             // 6.19 overlong NUL
		bad("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"), // 6.20 single surrogates
		bad("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"), // 6.21 paired surrogates
		nonchars, // 6.22
		v("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"), // 6.23 specials
	}
}

// 6.x: UTF-8 in text messages, whole and fragmented.
func utf8Cases() []tcase {
	const mixed = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"
	const invalid = kosme + "\xed\xa0\x80" + "edited"
	byByte := func(s string) func(*session) {
		return func(ss *session) { ss.message(opText, []byte(s), 1, 0) }
	}
	cs := []tcase{
		{id: "6.1.1", desc: "empty text message",
			script: func(s *session) { s.send(text("")) }, want: echoed(textMsg(""))},
		{id: "6.1.2", desc: "text message of 3 empty fragments",
			script: func(s *session) {
				s.send(f(false, 0, opText, ""), f(false, 0, opContinuation, ""), f(true, 0, opContinuation, ""))
			}, want: echoed(textMsg(""))},
		{id: "6.1.3", desc: "text message: empty, non-empty, empty fragment",
			script: func(s *session) {
				s.send(f(false, 0, opText, ""), f(false, 0, opContinuation, "middle frame payload"), f(true, 0, opContinuation, ""))
			}, want: echoed(textMsg("middle frame payload"))},
		{id: "6.2.1", desc: "valid UTF-8 in one frame",
			script: func(s *session) { s.send(text(mixed)) }, want: echoed(textMsg(mixed))},
		{id: "6.2.2", desc: "valid UTF-8 in 2 fragments split at a code point boundary",
			script: func(s *session) {
				s.send(f(false, 0, opText, mixed[:14]), f(true, 0, opContinuation, mixed[14:]))
			}, want: echoed(textMsg(mixed))},
		{id: "6.2.3", desc: "valid UTF-8 fragmented at every byte", script: byByte(mixed), want: echoed(textMsg(mixed))},
		{id: "6.2.4", desc: "κόσμε fragmented at every byte", script: byByte(kosme), want: echoed(textMsg(kosme))},
		{id: "6.3.1", desc: "invalid UTF-8 in one frame",
			script: func(s *session) { s.send(text(invalid)) }, want: fails(1007)},
		{id: "6.3.2", desc: "invalid UTF-8 fragmented at every byte", script: byByte(invalid), want: fails(1007)},
	}
	cs = append(cs, failFastCases()...)
	for i, group := range utf8Groups() {
		for j, vec := range group {
			id := fmt.Sprintf("6.%d.%d", i+5, j+1)
			want, kind := fails(1007), "invalid"
			if vec.valid {
				want, kind = echoed(textMsg(vec.s)), "valid"
			}
			cs = append(cs,
				tcase{id: id, desc: fmt.Sprintf("%s UTF-8 %q in one frame", kind, vec.s),
					script: func(s *session) { s.send(text(vec.s)) }, want: want},
				tcase{id: id + "-frag", desc: fmt.Sprintf("%s UTF-8 %q fragmented at every byte (not in Autobahn)", kind, vec.s),
					plainOnly: true, // the frames are the same with deflate
					script:    byByte(vec.s), want: want},
			)
		}
	}
	return cs
}

// 6.4.x: a message that becomes invalid in its middle. Failing when the
// invalid part arrives is OK (fail fast); failing at the end of the
// message is NON-STRICT; failing before is a failure.
func failFastCases() []tcase {
	const part1, part3 = kosme, "edited"
	// The marker "A" says the connection was still open after the valid
	// first part, "B" after the part that made it invalid.
	inFrames := func(p1, p2, p3 string) func(*session) {
		return func(s *session) {
			s.send(f(false, 0, opText, p1))
			if s.failedWithin(failFastWindow) {
				return
			}
			s.mark("A")
			s.send(f(false, 0, opContinuation, p2))
			if s.failedWithin(failFastWindow) {
				return
			}
			s.mark("B")
			s.send(f(true, 0, opContinuation, p3))
		}
	}
	inChops := func(p1, p2, p3 string) func(*session) {
		return func(s *session) {
			b := appendFrame(nil, f(true, 0, opText, p1+p2+p3))
			head := len(b) - len(p1+p2+p3)
			s.c.writeRaw(0, b[:head+len(p1)])
			if s.failedWithin(failFastWindow) {
				return
			}
			s.mark("A")
			s.c.writeRaw(0, b[head+len(p1):head+len(p1+p2)])
			if s.failedWithin(failFastWindow) {
				return
			}
			s.mark("B")
			s.c.writeRaw(0, b[head+len(p1+p2):])
		}
	}
	a, ab := []event{{kind: "A"}}, []event{{kind: "A"}, {kind: "B"}}
	failFast := expect{ok: a, nonStrict: ab, codes: []int{1007}}
	atEnd := expect{ok: ab, codes: []int{1007}}
	return []tcase{
		{id: "6.4.1", desc: "invalid UTF-8 (U+110000) in the second of 3 fragments",
			script: inFrames(part1, "\xf4\x90\x80\x80", part3), want: failFast},
		{id: "6.4.2", desc: "invalid UTF-8 that becomes invalid on the first byte of the third fragment",
			script: inFrames(part1, "\xf4", "\x90\x80\x80"+part3), want: atEnd},
		{id: "6.4.3", desc: "6.4.1 as one frame written in 3 chops",
			script: inChops(part1, "\xf4\x90\x80\x80", part3), want: failFast},
		{id: "6.4.4", desc: "6.4.2 as one frame written in 3 chops",
			script: inChops(part1, "\xf4", "\x90\x80\x80"+part3), want: atEnd},
	}
}
