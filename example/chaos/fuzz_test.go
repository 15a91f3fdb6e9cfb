package chaos

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// The fuzz targets drive the whole stack (wsroute, coder/websocket's
// frame parser, wsmw's Auth token extraction and subprotocol handling)
// with what a client controls: the bytes after the handshake, and the
// handshake's headers. wsroute's FuzzReceive and FuzzTruncateReason
// cover message decoding and close reasons on their own.
//
//	go test -run '^$' -fuzz '^FuzzFrames$' -fuzztime 30s ./example/chaos/
//	go test -run '^$' -fuzz '^FuzzHandshake$' -fuzztime 30s ./example/chaos/

var fuzzProbe atomic.Int64

// FuzzFrames sends arbitrary bytes after a valid handshake on /ws/echo,
// then half-closes. Whatever they are, the server answers with
// well-formed frames, never with 1011, and the handler ends.
func FuzzFrames(f *testing.F) {
	seeds := [][]byte{
		frame(true, 0, opText, []byte("hello"), false),
		append(frame(false, 0, opText, []byte("hel"), false), frame(true, 0, opCont, []byte("lo"), false)...),
		frame(true, 0, opPing, []byte("p"), false),
		closeFrame(1000, "bye"),
		closeFrame(4001, "\xff"),
		frame(true, 0, opBinary, []byte{0, 1}, false),
		frame(true, 0, opText, []byte("\xff"), false),
		frameHeader(true, 0, opText, 1<<40, false, []byte("abc")),
		frameHeader(true, 0, opText, 126, false, nil)[:3],
	}
	for _, m := range malformedFrames {
		seeds = append(seeds, m.bytes)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	s := newStack(f, stackConfig{rate: -1, maxPerIP: 1 << 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		probe := fmt.Sprintf("fz-%d", fuzzProbe.Add(1))
		c, resp, err := rawHandshake(testutil.Context(t, time.Minute), s.addr, srcIP(groupProbe, 100+int(fuzzProbe.Load()%1000)), handshake{path: "/ws/echo?probe=" + probe}, 0)
		testutil.NoErr(t, err)
		defer c.Close()
		testutil.Equal(t, resp.StatusCode, 101)
		c.Write(data)
		c.Conn.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			fin, op, p, err := readFrame(c.br, readLimit+64)
			if err != nil {
				break // the server closed the connection (or reset it)
			}
			switch op {
			case opText:
				testutil.Check(t, fin && bytes.HasPrefix(p, []byte("Echo: ")), "server sent text %q (fin %v)", clip(string(p), 80), fin)
			case opPong:
				testutil.Check(t, len(p) <= 125, "pong of %d bytes", len(p))
			case opClose:
				if len(p) >= 2 {
					code := int(p[0])<<8 | int(p[1])
					testutil.Check(t, code != 1011, "the server answered bytes %q with 1011", clip(string(data), 80))
				}
			default:
				t.Fatalf("server sent opcode %d", op)
			}
		}
		testutil.EventuallyWithin(t, 10*time.Second, func() bool { _, ok := s.outcomes.probe(probe); return ok }, "the handler did not end")
		e, _ := s.outcomes.probe(probe)
		testutil.Check(t, e.Code != 1011, "the connection ended with 1011 (%v) for bytes %q", e.Err, clip(string(data), 80))
	})
}

// FuzzHandshake sends handshakes to /ws/secure/echo with arbitrary
// Sec-WebSocket-Key, Sec-WebSocket-Version, Origin,
// Sec-WebSocket-Protocol, Authorization and Cookie headers and query.
// The server never answers 5xx, accepts only what RFC 6455 and the
// origin rule allow, echoes only a subprotocol the client offered, lets
// no invalid handshake reach the middleware, and logs no token.
func FuzzHandshake(f *testing.F) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	f.Add(key, "13", "", "bearer, "+validToken, "", "", "")
	f.Add(key, "13", "", "", "Bearer "+validToken, "", "")
	f.Add(key, "13", "https://evil.example", "", "", "token="+validToken, "")
	f.Add(key, "13", "", "", "", "", "token="+validToken)
	f.Add(key, "13", "null", "chat, bearer", "Bearer", "token=", "token=&token="+wrongToken)
	f.Add("short", "8", "::::", ",,,", "bearer "+wrongToken, "a=b; token="+wrongToken, "%zz")
	f.Add(key+"=", "13 ", "http://x", "bearer", "  ", ";;", "token=%00")
	s := newStack(f, stackConfig{rate: -1, maxPerIP: 1 << 20, logLevel: -4})
	clean := func(v string) string {
		return strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == 0 {
				return -1
			}
			return r
		}, v)
	}
	f.Fuzz(func(t *testing.T, key, version, origin, protocol, auth, cookie, query string) {
		key, version, origin, protocol, auth, cookie = clean(key), clean(version), clean(origin), clean(protocol), clean(auth), clean(cookie)
		probe := fmt.Sprintf("fh-%d", fuzzProbe.Add(1))
		// The query is sent escaped, as a client library would.
		path := "/ws/secure/echo?probe=" + probe + "&" + url.PathEscape(query)
		h := handshake{path: path, key: key, version: version, origin: origin}
		if key == "" {
			h.key = "-"
		}
		if version == "" {
			h.version = "-"
		}
		if origin == "" {
			h.origin = "-"
		}
		for name, v := range map[string]string{"Sec-WebSocket-Protocol": protocol, "Authorization": auth, "Cookie": cookie} {
			if v != "" {
				h.extra = append(h.extra, name+": "+v)
			}
		}
		before := s.logs.report().nViolation
		c, resp, err := rawHandshake(testutil.Context(t, time.Minute), s.addr, srcIP(groupProbe, 100+int(fuzzProbe.Load()%1000)), h, 0)
		if err != nil {
			t.Skipf("request not parsable by the client side: %v", err)
		}
		defer c.Close()
		testutil.Check(t, resp.StatusCode < 500, "status %d", resp.StatusCode)
		validKey := false
		if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key)); err == nil && len(k) == 16 {
			validKey = true
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			testutil.Check(t, validKey, "accepted an invalid key %q", key)
			testutil.Check(t, strings.TrimSpace(version) == "13", "accepted version %q", version)
			if origin != "" {
				u, err := url.Parse(origin)
				testutil.Check(t, err == nil && strings.EqualFold(u.Host, s.addr), "accepted Origin %q", origin)
			}
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
				offered := false
				for tok := range strings.SplitSeq(protocol, ",") {
					offered = offered || strings.EqualFold(strings.TrimSpace(tok), p)
				}
				testutil.Check(t, offered, "echoed subprotocol %q, offered %q", p, protocol)
			}
			c.Write(closeFrame(1000, ""))
			c.readClose(5 * time.Second)
		} else if !validKey {
			testutil.Check(t, !s.outcomes.reached(probe), "a handshake with key %q reached the middleware", key)
		}
		if !strings.Contains(query, validToken) {
			testutil.EventuallyWithin(t, 5*time.Second, func() bool { _, ok := s.outcomes.probe(probe); return ok || !s.outcomes.reached(probe) }, "handler did not end")
			testutil.Check(t, s.logs.report().nViolation == before, "a log line broke the rules: %v", s.logs.report().violations)
		}
	})
}
