package conformance

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// payload returns n bytes of deterministic text (printable ASCII) or
// binary (every byte value) data: a random 4 KiB block, repeated, so
// that megabytes cost little to make under the race detector.
func payload(n int, binary bool, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	block := make([]byte, min(n, 4096))
	for i := range block {
		if binary {
			block[i] = byte(r.Uint32())
		} else {
			block[i] = byte(' ' + r.IntN(95))
		}
	}
	b := make([]byte, n)
	for i := 0; i < n; i += copy(b[i:], block) {
	}
	return b
}

// 9.x: large messages, many fragments, many chops, many messages; 10.1.1:
// a large message in the fragments a client would choose. Autobahn's
// sizes reach 16 MiB; these are scaled down (docs/conformance.md) so that
// the suite stays fast under -race, keeping one case per mechanism.
func limitCases() []tcase {
	var cs []tcase
	kinds := []struct {
		group  string
		opcode byte
		name   string
	}{{"1", opText, "text"}, {"2", opBinary, "binary"}}
	// 9.1.x, 9.2.x: one large message.
	for _, k := range kinds {
		for i, n := range []int{64 << 10, 256 << 10, 1 << 20} {
			if n == 1<<20 && k.opcode == opText {
				continue // one 1 MiB message is enough
			}
			data := payload(n, k.opcode == opBinary, 9)
			cs = append(cs, tcase{id: fmt.Sprintf("9.%s.%d", k.group, i+1), desc: fmt.Sprintf("%s message of %d bytes", k.name, n),
				plainOnly: n > 256<<10, // with deflate, 1 MiB and up cost seconds under -race
				script:    func(s *session) { s.message(k.opcode, data, 0, 0) }, want: echoed(msgOf(k.opcode, data))})
		}
	}
	// 9.3.x, 9.4.x: a 256 KiB message (Autobahn: 4 MiB) in fragments of
	// 64 bytes and 16 KiB; the case numbers keep Autobahn's fragment sizes.
	for _, k := range kinds {
		group := map[string]string{"1": "3", "2": "4"}[k.group]
		data := payload(256<<10, k.opcode == opBinary, 93)
		for _, c := range []struct{ n, frag int }{{1, 64}, {5, 16 << 10}} {
			cs = append(cs, tcase{id: fmt.Sprintf("9.%s.%d", group, c.n), desc: fmt.Sprintf("256 KiB %s message in fragments of %d bytes", k.name, c.frag),
				// With deflate, only the smallest binary fragments: the
				// rest costs seconds under -race.
				plainOnly: c.n != 1 || k.opcode == opText,
				script:    func(s *session) { s.message(k.opcode, data, c.frag, 0) }, want: echoed(msgOf(k.opcode, data))})
		}
	}
	// 9.5.x, 9.6.x: a 256 KiB message (Autobahn: 1 MiB) written in chops
	// of 64 and 2048 bytes.
	for _, k := range kinds {
		group := map[string]string{"1": "5", "2": "6"}[k.group]
		data := payload(256<<10, k.opcode == opBinary, 95)
		for _, c := range []struct{ n, chop int }{{1, 64}, {6, 2048}} {
			if (c.n == 1) != (k.opcode == opText) {
				continue // text in 64-byte chops, binary in 2048-byte ones
			}
			cs = append(cs, tcase{id: fmt.Sprintf("9.%s.%d", group, c.n), desc: fmt.Sprintf("256 KiB %s message written in chops of %d bytes", k.name, c.chop),
				plainOnly: true,
				script:    func(s *session) { s.message(k.opcode, data, 0, c.chop) }, want: echoed(msgOf(k.opcode, data))})
		}
	}
	// 9.7.x, 9.8.x: many messages, each sent after the previous echo.
	for _, k := range kinds {
		group := map[string]string{"1": "7", "2": "8"}[k.group]
		for _, c := range []struct{ n, size, count int }{{1, 0, 50}, {3, 64, 50}, {6, 4096, 20}} {
			data := payload(c.size, k.opcode == opBinary, 97)
			var want []event
			for range c.count {
				want = append(want, msgOf(k.opcode, data))
			}
			cs = append(cs, tcase{id: fmt.Sprintf("9.%s.%d", group, c.n),
				desc: fmt.Sprintf("%d %s messages of %d bytes, one round trip each", c.count, k.name, c.size),
				script: func(s *session) {
					for i := range c.count {
						s.message(k.opcode, data, 0, 0)
						if !s.waitMessages(i + 1) {
							return
						}
					}
				}, want: echoed(want...)})
		}
	}
	big := payload(64<<10, false, 10)
	cs = append(cs, tcase{id: "10.1.1", desc: "64 KiB text message in fragments of 1300 bytes",
		script: func(s *session) { s.message(opText, big, 1300, 0) }, want: echoed(textBytes(big))})

	// The read limit, on a route with the default 64 KiB (not in Autobahn).
	limit := payload(64<<10, true, 11)
	over := append(bytes.Clone(limit), 'x')
	cs = append(cs,
		tcase{id: "x9.1", path: pathLimited, desc: "binary message of exactly the read limit",
			script: func(s *session) { s.message(opBinary, limit, 0, 0) }, want: echoed(binMsg(limit))},
		tcase{id: "x9.2", path: pathLimited, desc: "binary message one byte over the read limit: 1009",
			script: func(s *session) { s.message(opBinary, over, 0, 0) }, want: fails(1009)},
		tcase{id: "x9.3", path: pathLimited, desc: "text message over the read limit in 100 fragments: 1009",
			script: func(s *session) { s.message(opText, bytes.Repeat([]byte("a"), 70<<10), 70<<10/100, 0) }, want: fails(1009)},
		tcase{id: "x9.4", path: pathLimited, desc: "a frame announcing 2^62 bytes, then more than the limit: 1009, nothing allocated up front",
			script: func(s *session) {
				key := [4]byte{1, 2, 3, 4}
				b := append([]byte{0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0}, key[:]...)
				for i, c := range over {
					b = append(b, c^key[i&3])
				}
				s.c.writeRaw(0, b)
			}, want: fails(1009)},
		tcase{id: "x1.1", desc: "a 64-bit payload length with its top bit set",
			script: func(s *session) {
				s.c.writeRaw(0, []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 0})
			}, want: fails(1002)},
	)
	return cs
}

func msgOf(opcode byte, data []byte) event {
	return event{kind: "message", opcode: opcode, data: data}
}
