package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Verdicts, with Autobahn's names. A case passes when its behaviour is OK,
// NON-STRICT or INFORMATIONAL and its close behaviour is OK or
// INFORMATIONAL.
const (
	vOK             = "OK"
	vNonStrict      = "NON-STRICT"
	vInformational  = "INFORMATIONAL"
	vFailed         = "FAILED"
	vUnclean        = "UNCLEAN"
	vWrongCode      = "WRONG CODE"
	vFailedByClient = "FAILED BY CLIENT"
)

// Bounds of one case. Autobahn waits about a second; a loaded CI machine
// running -race needs more, and a passing case never waits for them: the
// judge moves on as soon as what it waits for has happened.
const (
	// caseTimeout bounds the wait for the outcome of a case: the echo the
	// client waits for, or the server's close. Autobahn's killAfter.
	caseTimeout = 10 * time.Second
	// dropTimeout bounds the wait, after the close handshake, for the
	// server to close the TCP connection (RFC 6455 section 7.1.1: the
	// server closes it first). Past it the client drops it: FAILED BY
	// CLIENT. Autobahn's serverConnectionDropTimeout is 1 s; this is a
	// little more for a loaded machine, and still well under the 2 s
	// after which wsroute's CloseTimeout drops a connection whose close
	// handshake never completes, so that bug cannot pass unseen.
	dropTimeout = 1500 * time.Millisecond
)

// expect is what a case allows, as Autobahn writes it: the events that
// make it OK or NON-STRICT, which side must start the close, the close
// codes allowed (a TCP close without a close frame is allowed too when
// the server is to fail the connection), and whether the close
// handshake must complete.
type expect struct {
	ok, nonStrict []event // nonStrict nil: no NON-STRICT outcome
	informational bool    // the outcome is reported, never judged
	anyOrder      bool    // ok in any order (control frames racing a long write)
	closedByMe    bool    // the client starts the close handshake
	codes         []int   // codes the server may close with
	requireClean  bool
}

// session is one case's connection: the script writes, a goroutine reads
// and records what the server sends, and the judge reads the record.
type session struct {
	c *client

	mu         sync.Mutex
	events     []event // messages, pongs and the script's markers, in order
	serverCl   *event  // the server's close frame
	clientCl   bool    // the client has sent a close frame
	closedByMe bool    // ... before the server sent one
	violations []string
	ended      bool  // the reader saw the end of the connection
	endErr     error // why (io.EOF: the server closed TCP cleanly)
	changed    chan struct{}
	done       chan struct{}
}

func newSession(c *client) *session {
	s := &session{c: c, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read()
	return s
}

// read records what the server sends until the connection ends. It
// answers pings and echoes the server's close frame, as a client does.
func (s *session) read() {
	defer close(s.done)
	for {
		e, err := s.c.readEvent()
		s.mu.Lock()
		if err != nil {
			var v *violation
			if errors.As(err, &v) {
				s.violations = append(s.violations, v.msg)
			}
			s.ended, s.endErr = true, err
			s.mu.Unlock()
			s.notify()
			return
		}
		if s.serverCl != nil {
			s.violations = append(s.violations, "a frame after its close frame: "+e.String())
		}
		var answer []frame
		switch e.kind {
		case "ping":
			if !s.clientCl {
				answer = append(answer, maskedFrame(true, 0, opPong, e.data))
			}
		case "close":
			if s.serverCl == nil {
				s.serverCl = &e
			}
			if !s.clientCl {
				s.clientCl = true
				// RFC 6455 section 5.5.1: echo the status code received.
				answer = append(answer, maskedFrame(true, 0, opClose, closePayload(e.code, "")))
			}
		default:
			s.events = append(s.events, e)
		}
		s.mu.Unlock()
		if len(answer) > 0 {
			s.c.write(0, answer...)
		}
		s.notify()
	}
}

func (s *session) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond (called with mu held) holds or d passes.
func (s *session) waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			return cond()
		}
	}
}

// Script helpers. Write errors are ignored, as Autobahn ignores them: a
// server that failed the connection may have closed it under the script,
// and the judge looks at what the server sent, not at what was accepted.

func (s *session) send(fs ...frame)                  { s.c.write(0, fs...) }
func (s *session) sendChopped(chop int, fs ...frame) { s.c.write(chop, fs...) }

// message sends one data message in fragments of frag bytes (0: one
// frame), written in chops of chop bytes (0: one write).
func (s *session) message(opcode byte, data []byte, frag, chop int) {
	s.c.write(chop, s.c.messageFrames(opcode, data, frag, false)...)
}

// compressed sends one data message compressed with permessage-deflate,
// or as it is when the server declined the offer.
func (s *session) compressed(opcode byte, data []byte, frag int) {
	s.c.write(0, s.c.messageFrames(opcode, data, frag, s.c.deflate)...)
}

// close sends a close frame with payload p (nil: empty).
func (s *session) close(p []byte) { s.closeChopped(0, p) }

// closeChopped sends a close frame written in chops of chop bytes.
func (s *session) closeChopped(chop int, p []byte) {
	s.mu.Lock()
	if !s.clientCl {
		s.clientCl = true
		s.closedByMe = s.serverCl == nil
	}
	s.mu.Unlock()
	s.c.write(chop, maskedFrame(true, 0, opClose, p))
}

// mark records a marker among the events, as Autobahn's "timeout" events.
func (s *session) mark(kind string) {
	s.mu.Lock()
	s.events = append(s.events, event{kind: kind})
	s.mu.Unlock()
}

// failedWithin reports whether the server closed or dropped the
// connection within d. It decides between OK (fail fast) and NON-STRICT
// (fail at the end of the message) in 6.4.x; both pass, so a slow
// machine cannot turn it into a failure.
func (s *session) failedWithin(d time.Duration) bool {
	return s.waitFor(d, func() bool { return s.serverCl != nil || s.ended })
}

// waitMessages waits until n messages have arrived in all (for scripts
// that, as Autobahn's 9.7.x, send the next message after the echo).
func (s *session) waitMessages(n int) bool {
	return s.waitFor(caseTimeout, func() bool {
		return s.serverCl != nil || s.ended || s.messages() >= n
	})
}

// waitEvents waits until n events have arrived in all.
func (s *session) waitEvents(n int) bool {
	return s.waitFor(caseTimeout, func() bool {
		return s.serverCl != nil || s.ended || len(s.events) >= n
	})
}

func (s *session) messages() int {
	n := 0
	for _, e := range s.events {
		if e.kind == "message" {
			n++
		}
	}
	return n
}

// result is a case's verdict.
type result struct {
	behavior, behaviorClose string
	detail                  []string
	code                    int // the server's close code, -1 if none
}

func (r result) passed() bool {
	return (r.behavior == vOK || r.behavior == vNonStrict || r.behavior == vInformational) &&
		(r.behaviorClose == vOK || r.behaviorClose == vInformational)
}

// finish runs the end of a case as Autobahn does and judges it: when the
// client is to close, it waits for the expected events and sends 1000;
// then it waits for the server's close frame and for the server to close
// the TCP connection.
func (s *session) finish(want expect) result {
	if want.closedByMe {
		s.waitFor(caseTimeout, func() bool {
			return s.serverCl != nil || s.ended || s.clientCl || want.matches(s.events, want.ok)
		})
		s.mu.Lock()
		sent := s.clientCl
		s.mu.Unlock()
		if !sent {
			s.close(closePayload(1000, ""))
		}
	}
	closed := s.waitFor(caseTimeout, func() bool { return s.serverCl != nil || s.ended })
	droppedByMe := false
	if closed && !s.waitFor(dropTimeout, func() bool { return s.ended }) {
		droppedByMe = true
	}
	if !closed {
		droppedByMe = true
	}
	s.c.nc.Close()
	<-s.done

	s.mu.Lock()
	defer s.mu.Unlock()
	var r result
	switch {
	case want.informational:
		r.behavior = vInformational
	case want.matches(s.events, want.ok):
		r.behavior = vOK
	case want.nonStrict != nil && want.matches(s.events, want.nonStrict):
		r.behavior = vNonStrict
	default:
		r.behavior = vFailed
		r.detail = append(r.detail, fmt.Sprintf("got %v, want %v", s.events, want.ok))
		if want.nonStrict != nil {
			r.detail[len(r.detail)-1] += fmt.Sprintf(" or %v", want.nonStrict)
		}
	}
	if len(s.violations) > 0 {
		r.behavior = vFailed
		r.detail = append(r.detail, s.violations...)
	}

	// The server closed TCP: a FIN, or a RST when it closed with the
	// client's last frames unread (after its close, it need not read).
	serverClosed := !droppedByMe && (errors.Is(s.endErr, io.EOF) || errors.Is(s.endErr, syscall.ECONNRESET))
	clean := s.clientCl && s.serverCl != nil && serverClosed
	code := -1
	if s.serverCl != nil {
		code = s.serverCl.code
	}
	r.code = code
	switch {
	case !closed:
		r.behaviorClose = vFailed
		r.detail = append(r.detail, fmt.Sprintf("the server neither closed nor failed the connection within %v", caseTimeout))
	case want.informational:
		r.behaviorClose = vInformational
	case s.closedByMe != want.closedByMe:
		r.behaviorClose = vFailed
		who := "the server"
		if s.closedByMe {
			who = "the client"
		}
		r.detail = append(r.detail, fmt.Sprintf("the connection was closed first by the wrong endpoint (%s); server close: %v, end: %v", who, s.serverCl, s.endErr))
	case want.requireClean && !clean:
		r.behaviorClose = vUnclean
		r.detail = append(r.detail, fmt.Sprintf("the close handshake did not complete (server close frame %v, end %v)", s.serverCl, s.endErr))
	case code != -1 && !slices.Contains(want.codes, code):
		r.behaviorClose = vWrongCode
		r.detail = append(r.detail, fmt.Sprintf("closed with %d %q, want one of %v", code, s.serverCl.reason, want.codes))
	case droppedByMe:
		r.behaviorClose = vFailedByClient
		r.detail = append(r.detail, fmt.Sprintf("the server did not close the TCP connection within %v of the close handshake", dropTimeout))
	default:
		r.behaviorClose = vOK
	}
	return r
}

// matches reports whether got is exactly list, or, with anyOrder, the
// same events in some order.
func (e expect) matches(got, list []event) bool {
	if len(got) != len(list) {
		return false
	}
	if !e.anyOrder {
		for i := range got {
			if !same(got[i], list[i]) {
				return false
			}
		}
		return true
	}
	used := make([]bool, len(list))
next:
	for _, g := range got {
		for i, w := range list {
			if !used[i] && same(g, w) {
				used[i] = true
				continue next
			}
		}
		return false
	}
	return true
}

func same(a, b event) bool {
	return a.kind == b.kind && a.opcode == b.opcode && bytes.Equal(a.data, b.data)
}

func (r result) String() string {
	s := r.behavior + " / close " + r.behaviorClose
	if len(r.detail) > 0 {
		s += ": " + strings.Join(r.detail, "; ")
	}
	return s
}

// Expected events.

func textMsg(s string) event   { return event{kind: "message", opcode: opText, data: []byte(s)} }
func textBytes(b []byte) event { return event{kind: "message", opcode: opText, data: b} }
func binMsg(b []byte) event    { return event{kind: "message", opcode: opBinary, data: b} }
func pong(b []byte) event      { return event{kind: "pong", data: b} }

// none is an empty event list that is not nil (a NON-STRICT outcome of
// "nothing").
var none = []event{}
