package chaos

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// What the tests learn from the server: how each handshake ended, what
// it logged, what its clients were told.

// outcomes records how every handshake that reached the middleware
// ended, in total and per probe: clients that want to know what the
// server decided add ?probe=ID to their URL.
type outcomes struct {
	mu       sync.Mutex
	byProbe  map[string]wsroute.ConnEnd
	started  map[string]bool // probes that reached the middleware
	accepted int
	ends     map[string]int // "accepted, closed 1000", "refused 4003", ...
}

func newOutcomes() *outcomes {
	return &outcomes{byProbe: make(map[string]wsroute.ConnEnd), started: make(map[string]bool), ends: make(map[string]int)}
}

func (o *outcomes) middleware() wsmw.Middleware {
	return wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
		probe := c.Query("probe")
		if probe != "" {
			o.mu.Lock()
			o.started[probe] = true
			o.mu.Unlock()
		}
		c.OnEnd(func(e wsroute.ConnEnd) {
			o.mu.Lock()
			defer o.mu.Unlock()
			if probe != "" {
				o.byProbe[probe] = e
			}
			o.ends[endKey(e)]++
			if e.Accepted {
				o.accepted++
			}
		})
		return next(ctx, c)
	})
}

// endKey names how a connection ended, for the report.
func endKey(e wsroute.ConnEnd) string {
	switch {
	case e.Accepted:
		return fmt.Sprintf("closed %d", int(e.Code))
	case e.Code != 0:
		return fmt.Sprintf("refused with close %d", int(e.Code))
	}
	return fmt.Sprintf("refused with HTTP %d", e.Status)
}

func (o *outcomes) probe(id string) (wsroute.ConnEnd, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.byProbe[id]
	return e, ok
}

func (o *outcomes) reached(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started[id]
}

func (o *outcomes) snapshot() (accepted int, ends map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ends = make(map[string]int, len(o.ends))
	for k, v := range o.ends {
		ends[k] = v
	}
	return o.accepted, ends
}

// logScanner receives the stack's slog output and checks each line as
// it arrives, keeping counts and the first offending lines rather than
// the log itself (which would weigh on the heap being measured).
//
// Rules: a token never appears at any level; the internal secret and
// stack traces only at ERROR.
type logScanner struct {
	mu         sync.Mutex
	lines      map[string]int // per level
	panics     int            // error lines about a recovered panic
	clientGone int            // error lines for clients that left before Accept
	unexpected []string       // other error lines: first few
	violations []string
	nViolation int
}

func newLogScanner() *logScanner { return &logScanner{lines: make(map[string]int)} }

func (l *logScanner) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		l.line(string(line))
	}
	return len(p), nil
}

func (l *logScanner) line(s string) {
	level := "?"
	if i := strings.Index(s, "level="); i >= 0 {
		level, _, _ = strings.Cut(s[i+len("level="):], " ")
	}
	var bad string
	switch {
	case strings.Contains(s, validToken):
		bad = "token in log"
	case level != "ERROR" && strings.Contains(s, internalSecret):
		bad = "internal error text below ERROR"
	case level != "ERROR" && (strings.Contains(s, "[running]") || strings.Contains(s, "goroutine ")):
		bad = "stack trace below ERROR"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[level]++
	if level == "ERROR" && !strings.Contains(s, internalSecret) {
		// Every error line the tests cause on purpose carries the
		// secret of /ws/fail or /ws/panic; any other is news.
		if clientGoneLine(s) {
			l.clientGone++ // see TestClientGoneBeforeAcceptIsNotAnError
		} else if len(l.unexpected) < 5 {
			l.unexpected = append(l.unexpected, clip(s, 400))
		}
	}
	if level == "ERROR" && strings.Contains(s, `msg="wsroute: handler panicked`) {
		l.panics++
	}
	if bad != "" {
		l.nViolation++
		if len(l.violations) < 5 {
			l.violations = append(l.violations, bad+": "+clip(s, 400))
		}
	}
}

// clientGoneLine reports whether an error-level line is about a client
// that left during its handshake, which is not a server error (a bug
// this suite found, now fixed: TestClientGoneBeforeAcceptIsNotAnError),
// in its two forms: gone before Accept, gone while Accept wrote the 101.
func clientGoneLine(s string) bool {
	return strings.Contains(s, "accept: context canceled") ||
		strings.Contains(s, "failed to hijack connection") &&
			(strings.Contains(s, "connection reset by peer") || strings.Contains(s, "broken pipe"))
}

// logReport is what a logScanner found.
type logReport struct {
	lines      map[string]int // per level
	panics     int
	clientGone int
	unexpected []string
	violations []string
	nViolation int
}

func (l *logScanner) report() logReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := make(map[string]int, len(l.lines))
	for k, v := range l.lines {
		lines[k] = v
	}
	return logReport{lines: lines, panics: l.panics, clientGone: l.clientGone,
		unexpected: append([]string(nil), l.unexpected...),
		violations: append([]string(nil), l.violations...), nViolation: l.nViolation}
}

func (a *logReport) merge(b logReport) {
	if a.lines == nil {
		a.lines = make(map[string]int)
	}
	for k, v := range b.lines {
		a.lines[k] += v
	}
	a.panics += b.panics
	a.clientGone += b.clientGone
	a.unexpected = append(a.unexpected, b.unexpected...)
	a.violations = append(a.violations, b.violations...)
	a.nViolation += b.nViolation
}

// clientText checks everything a client was told (close reasons, HTTP
// refusal bodies, response headers) for what must never reach it.
type clientText struct {
	mu         sync.Mutex
	checked    int
	violations []string
}

func (c *clientText) check(where, s string) {
	var bad string
	switch {
	case strings.Contains(s, validToken):
		bad = "token"
	case strings.Contains(s, internalSecret), strings.Contains(s, "postgres://"):
		bad = "internal error text"
	case strings.Contains(s, "goroutine "), strings.Contains(s, ".go:"):
		bad = "stack trace"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	if bad != "" && len(c.violations) < 10 {
		c.violations = append(c.violations, fmt.Sprintf("%s reached a client in %s: %q", bad, where, clip(s, 200)))
	}
}

func (c *clientText) report() (checked int, violations []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked, append([]string(nil), c.violations...)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sortedKeys returns m's keys in order, for stable reports.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
