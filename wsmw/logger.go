package wsmw

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// Logger logs each connection through l (nil means slog.Default()): one
// line when it is accepted, and one when it ends; a refused connection
// gets a single line.
//
//	"websocket accepted"  route, path, query, remote, conn, subprotocol
//	"websocket closed"    the same, code, reason, duration,
//	                      msgs_in, msgs_out, bytes_in, bytes_out, error
//	"websocket refused"   route, path, query, remote, conn, status,
//	                      code and reason (refused with a close code),
//	                      duration, error
//
// route is the matched pattern (http.Request.Pattern, which ServeMux and
// chi fill), remote the client IP, conn the connection ID. Lines are
// logged at Info, or Error when the server failed (close code 1011, or a
// 5xx refusal, unless the client had left). error is what the chain
// returned (a refusal's cause, a handler's error), left out when the
// connection simply ended because the client left.
//
// Secrets stay out of the log: no header is logged (Authorization,
// cookies and Sec-WebSocket-Protocol never appear), and the query is
// logged with "REDACTED" for the value of every parameter whose name
// contains "token", "auth", "key", "secret", "pass", "jwt" or "sig", and
// of the parameter Auth reads its token from, whatever its name.
//
// Put Logger first in the chain so that it sees every refusal. Counting
// costs nothing per message: the counts are wsroute's (Conn.Stats), read
// once at the end.
//
// The connection's own fields (route to conn) are worked out once, when
// the first of its lines is logged, and shared by both lines: one
// allocation per connection for everything Logger keeps, and none when
// the level is disabled.
func Logger(l *slog.Logger) Middleware {
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			cl := &connLog{ctx: ctx, logger: l, c: c, start: time.Since(monoBase)}
			if cl.logger == nil {
				cl.logger = slog.Default()
			}
			c.OnAccept(cl.accepted)
			c.OnEnd(cl.ended)
			return next(ctx, c)
		}
	}
}

// connLog is Logger's state for one connection: its fields (route to
// conn), worked out by base the first time a line is logged, and shared
// by both lines. Each line copies them into an array on its own stack and
// appends its own after them, so neither line allocates a slice and the
// connection keeps only what both lines share. mu guards n and conn,
// should Accept run on another goroutine than the handler's end.
type connLog struct {
	ctx    context.Context
	logger *slog.Logger
	c      *wsroute.Conn
	start  time.Duration // since monoBase: 8 bytes, not time.Time's 24
	mu     sync.Mutex
	n      int
	conn   [maxConnAttrs]slog.Attr
}

// monoBase is what connLog.start counts from, on the monotonic clock.
var monoBase = time.Now()

const (
	maxConnAttrs = 5 // route, path, query, remote, conn
	maxLineAttrs = 8 // code, reason, duration, the 4 counts, error
)

// lineAttrs is the attributes of one line, on the logging goroutine's
// stack.
type lineAttrs [maxConnAttrs + maxLineAttrs]slog.Attr

// base appends the connection's fields to line, working them out the
// first time. The caller holds mu.
func (cl *connLog) base(line *lineAttrs) []slog.Attr {
	if cl.n == 0 {
		cl.n = len(appendConnAttrs(cl.conn[:0], cl.c))
	}
	return append(line[:0], cl.conn[:cl.n]...)
}

func (cl *connLog) accepted() {
	if !cl.logger.Enabled(cl.ctx, slog.LevelInfo) {
		return
	}
	var line lineAttrs
	cl.mu.Lock()
	attrs := cl.base(&line)
	cl.mu.Unlock()
	attrs = append(attrs, slog.String("subprotocol", cl.c.Subprotocol()))
	logAttrs(cl.ctx, cl.logger, &acceptedSite, slog.LevelInfo, "websocket accepted", attrs)
}

func (cl *connLog) ended(e wsroute.ConnEnd) {
	logEnd(cl, e, time.Since(monoBase)-cl.start)
}

func logEnd(cl *connLog, e wsroute.ConnEnd, d time.Duration) {
	c, ctx, logger := cl.c, cl.ctx, cl.logger
	level := slog.LevelInfo
	if e.Code == wsroute.StatusInternalError || e.Status >= 500 && !clientLeft(c, e.Err) {
		level = slog.LevelError
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	var line lineAttrs
	cl.mu.Lock()
	attrs := cl.base(&line)
	cl.mu.Unlock()
	msg := "websocket closed"
	if e.Accepted {
		s := c.Stats()
		attrs = append(attrs,
			slog.Int("code", int(e.Code)), slog.String("reason", e.Reason),
			slog.Duration("duration", d),
			slog.Int64("msgs_in", s.MessagesIn), slog.Int64("msgs_out", s.MessagesOut),
			slog.Int64("bytes_in", s.BytesIn), slog.Int64("bytes_out", s.BytesOut))
	} else {
		msg = "websocket refused"
		attrs = append(attrs, slog.Int("status", e.Status))
		if e.Code != 0 {
			attrs = append(attrs, slog.Int("code", int(e.Code)), slog.String("reason", e.Reason))
		}
		attrs = append(attrs, slog.Duration("duration", d))
	}
	if e.Err != nil && !errors.Is(e.Err, wsroute.ErrClosed) {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	logAttrs(ctx, logger, &endSite, level, msg, attrs)
}

// The call sites of logAttrs, found once.
var acceptedSite, endSite atomic.Uintptr

// logAttrs is l.LogAttrs for a level already found enabled. The caller
// the record carries (for a handler with AddSource) is the site of this
// call, as LogAttrs would report, but looked up once per site rather
// than on every line: the lookup walks the stack, which was a quarter of
// Logger's share of a handshake.
func logAttrs(ctx context.Context, l *slog.Logger, site *atomic.Uintptr, level slog.Level, msg string, attrs []slog.Attr) {
	pc := site.Load()
	if pc == 0 {
		var pcs [1]uintptr
		runtime.Callers(2, pcs[:]) // skip runtime.Callers and logAttrs
		pc = pcs[0]
		site.Store(pc)
	}
	r := slog.NewRecord(time.Now(), level, msg, pc)
	r.AddAttrs(attrs...)
	_ = l.Handler().Handle(ctx, r)
}

// appendConnAttrs appends the connection's fields: at most maxConnAttrs.
func appendConnAttrs(attrs []slog.Attr, c *wsroute.Conn) []slog.Attr {
	r := c.Request()
	if r.Pattern != "" {
		attrs = append(attrs, slog.String("route", r.Pattern))
	}
	attrs = append(attrs, slog.String("path", r.URL.Path))
	if r.URL.RawQuery != "" {
		attrs = append(attrs, slog.String("query", redactQuery(r.URL.RawQuery, secretParams(c))))
	}
	return append(attrs, slog.String("remote", c.ClientIP()), slog.String("conn", c.ID()))
}

// clientLeft reports whether a refusal happened because the client went
// away during the handshake (a reset while the 101 was written, or a
// request context ended by net/http when the client hung up): the
// client's doing, not a server error.
func clientLeft(c *wsroute.Conn, err error) bool {
	if c.Request().Context().Err() != nil || errors.Is(err, wsroute.ErrClosed) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// secretParamsKey is the Conn.Set key under which middleware that read a
// secret from the query (Auth) leave the parameter's name for Logger.
const secretParamsKey = "wsmw.secret-query-params"

// redactQueryParam makes Logger redact query parameter name on c.
func redactQueryParam(c *wsroute.Conn, name string) {
	names := secretParams(c)
	if !slices.Contains(names, name) {
		c.Set(secretParamsKey, append(slices.Clip(names), name))
	}
}

func secretParams(c *wsroute.Conn) []string {
	v, _ := c.Get(secretParamsKey)
	names, _ := v.([]string)
	return names
}

// redactQuery replaces the values of sensitive parameters, and of those
// named in also, keeping the query's order and encoding otherwise.
func redactQuery(q string, also []string) string {
	var b strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(name); (err != nil || sensitive(key) || slices.Contains(also, key)) && hasValue {
			b.WriteString(name)
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

var sensitiveWords = []string{"token", "auth", "key", "secret", "pass", "jwt", "sig"}

func sensitive(name string) bool {
	name = strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
