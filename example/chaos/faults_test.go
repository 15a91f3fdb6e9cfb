package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are what hostile or broken clients do. Each runs once, bounded
// in time, and returns what it observed and whether that is what the
// design promises for bad input (docs/close-codes.md says which code
// each gets). The chaos run tallies them.

// faultEnv is what one fault needs.
type faultEnv struct {
	r     *chaosRun
	node  *stack
	src   string // the client's source address
	probe string // unique: ?probe= in its URL, to ask the server later
	rng   *rand.Rand
}

// probed adds ?probe= to path, for a fault that asks the server about
// its connection later. Most do not: the server keeps what it learns
// of a probe until the end of the run.
func (e *faultEnv) probed(p string) string {
	sep := "?"
	if strings.Contains(p, "?") {
		sep = "&"
	}
	return p + sep + "probe=" + e.probe
}

// open completes a handshake on path and returns the connection, or a
// result naming the refusal.
func (e *faultEnv) open(ctx context.Context, path string, h handshake, rcvBuf int) (*rawConn, string, bool) {
	if h.path == "" {
		h.path = path
	}
	c, resp, err := rawHandshake(ctx, e.node.addr, e.src, h, rcvBuf)
	if err != nil {
		return nil, "dial: " + err.Error(), false
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		e.r.text.check("HTTP body", string(body))
		c.Close()
		return nil, fmt.Sprintf("HTTP %d", resp.StatusCode), false
	}
	return c, "", true
}

// expectClose reads until the close frame and answers it, as a client
// should, so the server's close handshake ends at once.
func (e *faultEnv) expectClose(c *rawConn, want ...int) (string, bool) {
	code, reason, err := c.readClose(10 * time.Second)
	if err != nil {
		return "read: " + err.Error(), false
	}
	e.r.text.check("close reason", reason)
	if code > 0 {
		c.Write(closeFrame(uint16(code), ""))
	}
	c.Close()
	res := fmt.Sprintf("close %d", code)
	if code == -1 {
		res = "closed without a code"
	}
	for _, w := range want {
		if code == w {
			return res, true
		}
	}
	return res, false
}

type fault struct {
	name string
	fn   func(ctx context.Context, e *faultEnv) (string, bool)
}

var faults = []fault{
	{"drop mid-handshake", dropMidHandshake},
	{"drop after request", dropAfterRequest},
	{"drop mid-message", dropMidMessage},
	{"drop mid-broadcast", dropMidBroadcast},
	{"oversized message", oversized},
	{"huge frame header", hugeFrame},
	{"invalid UTF-8", invalidUTF8},
	{"binary on text route", binaryOnText},
	{"malformed frame", malformed},
	{"bad handshake", badHandshake},
	{"auth", authAttempt},
	{"handler error", handlerError},
	{"handler panic", handlerPanic},
	{"message flood", messageFlood},
	{"ping burst", pingBurst},
}

// dropMidHandshake sends part of a handshake request and vanishes.
func dropMidHandshake(ctx context.Context, e *faultEnv) (string, bool) {
	c, err := rawDial(ctx, e.node.addr, e.src, 0)
	if err != nil {
		return "dial: " + err.Error(), false
	}
	req := handshake{path: "/ws/echo"}.bytes(e.node.addr)
	c.Write(req[:1+e.rng.IntN(len(req)-3)])
	if e.rng.IntN(2) == 0 {
		c.reset()
		return "reset", true
	}
	c.Close()
	return "closed", true
}

// dropAfterRequest sends a whole handshake and vanishes before the 101.
func dropAfterRequest(ctx context.Context, e *faultEnv) (string, bool) {
	c, err := rawDial(ctx, e.node.addr, e.src, 0)
	if err != nil {
		return "dial: " + err.Error(), false
	}
	path := "/ws/echo"
	if e.rng.IntN(2) == 0 {
		path = "/ws/rooms/r0"
	}
	c.Write(handshake{path: path}.bytes(e.node.addr))
	c.reset()
	return "reset", true
}

// dropMidMessage opens /ws/echo, sends part of a frame (or the first
// fragment of a message) and resets the connection.
func dropMidMessage(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	payload := bytes.Repeat([]byte("a"), 1000)
	if e.rng.IntN(2) == 0 {
		c.Write(frameHeader(true, 0, opText, 1000, false, payload[:e.rng.IntN(1000)]))
	} else {
		c.Write(frame(false, 0, opText, payload, false))
	}
	c.reset()
	return "reset", true
}

// dropMidBroadcast joins the busiest room, reads a little of its
// traffic and resets the connection.
func dropMidBroadcast(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/rooms/"+firehose, handshake{}, 0)
	if !ok {
		return res, false
	}
	c.SetReadDeadline(time.Now().Add(time.Duration(50+e.rng.IntN(300)) * time.Millisecond))
	buf := make([]byte, 1+e.rng.IntN(8192))
	io.ReadFull(c, buf)
	c.reset()
	return "reset", true
}

// oversized sends one byte more than the read limit: 1009.
func oversized(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	c.Write(frame(true, 0, opText, bytes.Repeat([]byte("a"), readLimit+1), false))
	return e.expectClose(c, 1009)
}

// hugeFrame announces a 1 TiB frame and sends a little over the read
// limit of it: the length must not be trusted, only counted (1009).
func hugeFrame(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	c.Write(frameHeader(true, 0, opBinary, 1<<40, false, bytes.Repeat([]byte("b"), readLimit+16)))
	return e.expectClose(c, 1009)
}

func invalidUTF8(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	c.Write(frame(true, 0, opText, []byte("ok \xff\xfe \xed\xa0\x80"), false))
	return e.expectClose(c, 1007)
}

func binaryOnText(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	c.Write(frame(true, 0, opBinary, []byte{0, 1, 2}, false))
	return e.expectClose(c, 1003)
}

// malformedFrames break RFC 6455 framing: 1002 (1007 for a close reason
// that is not UTF-8) or no code, never 1011.
var malformedFrames = []struct {
	name  string
	bytes []byte
}{
	{"reserved bits", frame(true, 0b100, opText, []byte("x"), false)},
	{"unmasked", frame(true, 0, opText, []byte("x"), true)},
	{"oversized control", frame(true, 0, opPing, make([]byte, 126), false)},
	{"fragmented control", frame(false, 0, opPing, []byte("p"), false)},
	{"bad opcode", frame(true, 0, 0x3, []byte("x"), false)},
	{"continuation first", frame(true, 0, opCont, []byte("x"), false)},
	{"bad close code", closeFrame(1005, "")},
	{"close reason not UTF-8", closeFrame(1000, "\xff")},
	{"one-byte close payload", frame(true, 0, opClose, []byte{3}, false)},
}

func malformed(ctx context.Context, e *faultEnv) (string, bool) {
	m := malformedFrames[e.rng.IntN(len(malformedFrames))]
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	c.Write(m.bytes)
	want := []int{1002, -1}
	if m.name == "close reason not UTF-8" {
		// RFC 6455 §8.1: invalid UTF-8 fails the connection with 1007.
		want = []int{1007, -1}
	}
	res, ok = e.expectClose(c, want...)
	return m.name + ": " + res, ok
}

// badHandshakes are refused before any middleware or handler runs.
var badHandshakes = []struct {
	name   string
	h      handshake
	status int
}{
	{"bad key", handshake{key: "c2hvcnQ="}, http.StatusBadRequest},
	{"no key", handshake{key: "-"}, http.StatusBadRequest},
	{"two keys", handshake{extra: []string{"Sec-WebSocket-Key: " + newKey()}}, http.StatusBadRequest},
	{"version 8", handshake{version: "8"}, http.StatusBadRequest},
	{"foreign Origin", handshake{origin: "https://evil.example"}, http.StatusForbidden},
	{"Origin null", handshake{origin: "null"}, http.StatusForbidden},
	{"no Upgrade", handshake{upgrade: "-"}, http.StatusUpgradeRequired},
	{"POST", handshake{method: "POST"}, http.StatusMethodNotAllowed},
}

func badHandshake(ctx context.Context, e *faultEnv) (string, bool) {
	b := badHandshakes[e.rng.IntN(len(badHandshakes))]
	path := "/ws/echo"
	if e.rng.IntN(2) == 0 {
		path = "/ws/secure/echo?token=" + validToken
	}
	h := b.h
	h.path = e.probed(path)
	c, res, ok := e.open(ctx, path, h, 0)
	if ok {
		c.Close()
		return b.name + ": accepted", false
	}
	e.r.mustNotReach(e.probe)
	return b.name + ": " + res, res == fmt.Sprintf("HTTP %d", b.status)
}

// authAttempts try /ws/secure/echo with and without the token, through
// every place Auth reads it from.
var authAttempts = []struct {
	name  string
	query string
	extra []string
	ok    bool
}{
	{"no token", "", nil, false},
	{"wrong header", "", []string{"Authorization: Bearer " + wrongToken}, false},
	{"wrong query", "?token=" + wrongToken, nil, false},
	{"wrong cookie", "", []string{"Cookie: token=" + wrongToken}, false},
	{"bearer header", "", []string{"Authorization: Bearer " + validToken}, true},
	{"bare header", "", []string{"Authorization: " + validToken}, true},
	{"query", "?token=" + validToken, nil, true},
	{"cookie", "", []string{"Cookie: theme=dark; token=" + validToken}, true},
	{"subprotocol", "", []string{"Sec-WebSocket-Protocol: bearer, " + validToken}, true},
	{"wrong subprotocol", "", []string{"Sec-WebSocket-Protocol: bearer, " + wrongToken}, false},
}

func authAttempt(ctx context.Context, e *faultEnv) (string, bool) {
	a := authAttempts[e.rng.IntN(len(authAttempts))]
	c, res, ok := e.open(ctx, "/ws/secure/echo"+a.query, handshake{extra: a.extra}, 0)
	if !ok {
		return a.name + ": " + res, false
	}
	c.Write(frame(true, 0, opText, []byte("hi"), false))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, op, p, err := readFrame(c.br, 1<<16)
	c.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		c.Close()
		return a.name + ": " + err.Error(), false
	case op == opText && string(p) == "Echo: hi":
		c.Write(closeFrame(1000, ""))
		c.readClose(5 * time.Second)
		c.Close()
		return a.name + ": echoed", a.ok
	case op == opClose && len(p) >= 2:
		e.r.text.check("close reason", string(p[2:]))
		c.Write(closeFrame(1000, ""))
		c.Close()
		code := int(p[0])<<8 | int(p[1])
		return fmt.Sprintf("%s: close %d", a.name, code), !a.ok && code == 4001 && string(p[2:]) == "Unauthorized"
	}
	c.Close()
	return fmt.Sprintf("%s: unexpected frame %d", a.name, op), false
}

func handlerError(ctx context.Context, e *faultEnv) (string, bool) {
	e.r.failsInjected.Add(1)
	c, res, ok := e.open(ctx, "/ws/fail", handshake{}, 0)
	if !ok {
		return res, false
	}
	return e.expectInternalError(c)
}

func handlerPanic(ctx context.Context, e *faultEnv) (string, bool) {
	e.r.panicsInjected.Add(1)
	c, res, ok := e.open(ctx, "/ws/panic", handshake{}, 0)
	if !ok {
		return res, false
	}
	return e.expectInternalError(c)
}

// expectInternalError wants 1011 "internal error" and nothing more.
func (e *faultEnv) expectInternalError(c *rawConn) (string, bool) {
	code, reason, err := c.readClose(10 * time.Second)
	c.Write(closeFrame(1000, ""))
	c.Close()
	if err != nil {
		return "read: " + err.Error(), false
	}
	e.r.text.check("close reason", reason)
	return fmt.Sprintf("close %d %q", code, reason), code == 1011 && reason == "internal error"
}

// messageFlood sends far more messages than MessageRate allows: 1008.
func messageFlood(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	var burst []byte
	for range 400 {
		burst = append(burst, frame(true, 0, opText, []byte("flood"), false)...)
	}
	c.Write(burst)
	return e.expectClose(c, 1008)
}

// pingBurst sends 300 pings at once and wants 300 pongs, then an echo:
// control frames are answered without disturbing the connection.
func pingBurst(ctx context.Context, e *faultEnv) (string, bool) {
	c, res, ok := e.open(ctx, "/ws/echo", handshake{}, 0)
	if !ok {
		return res, false
	}
	defer c.Close()
	const n = 300
	var burst []byte
	payload := bytes.Repeat([]byte("p"), 125)
	for range n {
		burst = append(burst, frame(true, 0, opPing, payload, false)...)
	}
	c.Write(burst)
	c.Write(frame(true, 0, opText, []byte("after pings"), false))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	pongs := 0
	for {
		_, op, p, err := readFrame(c.br, 1<<16)
		if err != nil {
			return fmt.Sprintf("%d pongs, then %v", pongs, err), false
		}
		switch {
		case op == opPong:
			pongs++
		case op == opText && string(p) == "Echo: after pings":
			c.Write(closeFrame(1000, ""))
			c.readClose(5 * time.Second)
			if pongs != n {
				return fmt.Sprintf("%d pongs of %d", pongs, n), false
			}
			e.r.pings.Add(n)
			return "all pongs, then echo", true
		default:
			return fmt.Sprintf("unexpected frame %d after %d pongs", op, pongs), false
		}
	}
}

// Long-lived faults run for the whole injection phase.

// stalledReader joins room with a 4 KiB receive buffer and never reads:
// its TCP window fills while broadcasts continue.
func (r *chaosRun) stalledReader(ctx context.Context, i int, room string, node *stack) (*rawConn, string, error) {
	probe := fmt.Sprintf("stall-%d", i)
	h := handshake{path: "/ws/rooms/" + room + "?probe=" + probe}
	c, resp, err := rawHandshake(ctx, node.addr, srcIP(groupStalled, i), h, 4096)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, "", fmt.Errorf("stalled reader: HTTP %d", resp.StatusCode)
	}
	return c, probe, nil
}

// pingFlood sends pings as fast as a throttled loop allows until ctx
// ends; with read set it reads the pongs, else it lets them pile up
// until the server's writes stall.
func (r *chaosRun) pingFlood(ctx context.Context, node *stack, i int, read bool) (string, bool) {
	probe := fmt.Sprintf("pingflood-%d", i)
	c, resp, err := rawHandshake(ctx, node.addr, srcIP(groupChaos, 1000+i), handshake{path: "/ws/echo?probe=" + probe}, 4096)
	if err != nil {
		return "dial: " + err.Error(), false
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return fmt.Sprintf("HTTP %d", resp.StatusCode), false
	}
	var pongs atomic.Int64
	var wg sync.WaitGroup
	if read {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, op, _, err := readFrame(c.br, 1<<16)
				if err != nil {
					return
				}
				if op == opPong {
					pongs.Add(1)
				}
			}
		}()
	}
	var burst []byte
	for range 50 {
		burst = append(burst, frame(true, 0, opPing, []byte("flood"), false)...)
	}
	sent := 0
	var werr error
	for ctx.Err() == nil {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, werr = c.Write(burst); werr != nil {
			if errors.Is(werr, context.DeadlineExceeded) || isTimeout(werr) {
				werr = nil
				time.Sleep(50 * time.Millisecond) // the server stopped reading us
				continue
			}
			break
		}
		sent += 50
		time.Sleep(5 * time.Millisecond)
	}
	if read {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(closeFrame(1000, ""))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		wg.Wait()
		c.Close()
	} else {
		c.reset()
	}
	r.pings.Add(int64(sent))
	r.pongs.Add(pongs.Load())
	state := "still open at the end"
	if werr != nil {
		state = "cut by the server"
	}
	// Either is fine: a flooder that does not read its pongs as fast as
	// it asks for them is a client that stops reading, and is cut when
	// a pong cannot be written for 5 s (coder/websocket's control-frame
	// write timeout) or the write timeout passes.
	if read {
		return fmt.Sprintf("reading pongs: %s", state), true
	}
	return fmt.Sprintf("not reading: %s", state), true
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// slowloris drips a handshake one byte every 200 ms until the server
// hangs up, and returns how long that took.
func (r *chaosRun) slowloris(ctx context.Context, node *stack, i int) (time.Duration, error) {
	c, err := rawDial(ctx, node.addr, srcIP(groupSlow, i), 0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := handshake{}.bytes(node.addr)
	start := time.Now()
	one := make([]byte, 1)
	for _, b := range req {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		c.Write([]byte{b})
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(one); err == nil || !isTimeout(err) {
			return time.Since(start), nil // the server hung up (or answered)
		}
	}
	return time.Since(start), errors.New("the whole request was sent before the server hung up")
}
