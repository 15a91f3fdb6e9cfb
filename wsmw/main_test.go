package wsmw_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Tiny assertion helpers: tests read as plain Go.

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func testLogger() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// realIP stands in for chi's middleware.RealIP: the client IP comes from
// X-Real-IP, so one test process can play many clients.
func realIP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip := r.Header.Get("X-Real-IP"); ip != "" {
			r.RemoteAddr = net.JoinHostPort(ip, "1234")
		}
		h.ServeHTTP(w, r)
	})
}

// serve mounts fn, wrapped in mws, at /ws behind realIP.
func serve(t testing.TB, opts *wsroute.Options, fn wsroute.HandlerFunc, mws ...wsmw.Middleware) *httptest.Server {
	t.Helper()
	if opts == nil {
		l, _ := testLogger()
		opts = &wsroute.Options{Logger: l}
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", opts.Handle(wsmw.Chain(mws...)(fn)))
	srv := httptest.NewServer(realIP(mux))
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// dial connects and fails the test if the handshake fails.
func dial(t testing.TB, srv *httptest.Server, path string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, path), opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// outcome is what a client saw of one connection attempt: the close
// code it ended with (with its reason), or the HTTP status it was
// refused with.
type outcome struct {
	status int // HTTP status of the handshake response
	code   websocket.StatusCode
	reason string
}

func (o outcome) String() string {
	if o.status < 0 {
		return fmt.Sprintf("error %q", o.reason)
	}
	if o.status != http.StatusSwitchingProtocols {
		return fmt.Sprintf("HTTP %d", o.status)
	}
	return fmt.Sprintf("close %d %q", o.code, o.reason)
}

// attempt dials, reads until the server closes, and reports what the
// client saw. Messages the server sends are ignored.
func attempt(ctx context.Context, url string, opts *websocket.DialOptions) (outcome, error) {
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		if resp != nil {
			return outcome{status: resp.StatusCode}, nil
		}
		return outcome{}, err
	}
	defer c.CloseNow()
	for {
		if _, _, err = c.Read(ctx); err != nil {
			break
		}
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		return outcome{status: 101, code: -1, reason: err.Error()}, nil
	}
	return outcome{status: 101, code: ce.Code, reason: ce.Reason}, nil
}

// readClose reads until the connection ends and returns the close code
// and reason the server sent (-1 if none).
func readClose(t testing.TB, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx := testutil.Ctx(t)
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

// echo is the Nexio echo example.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, "Echo: "+msg); err != nil {
			return err
		}
	}
}

// roundTrip sends msg and returns the reply.
func roundTrip(t testing.TB, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	return string(got)
}

// eventually polls cond until it holds or five seconds pass.
// mustPanic asserts that f panics with a message starting with prefix.
func mustPanic(t testing.TB, prefix string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		p := recover()
		testutil.Check(t, p != nil, "did not panic")
		msg := fmt.Sprint(p)
		testutil.Check(t, strings.HasPrefix(msg, prefix), "panic %q does not start with %q", msg, prefix)
	}()
	f()
}

// refuseBound is how long wsroute lets the close handshake of a refused
// connection (Close before Accept) take before it drops the socket.
const refuseBound = time.Second

// burstOptions are the route options of the burst tests: a close of an
// accepted connection is not cut short however loaded the machine is
// (the close timeout is not what those tests are about).
func burstOptions() *wsroute.Options {
	l, _ := testLogger()
	return &wsroute.Options{Logger: l, CloseTimeout: testutil.CtxTimeout}
}

// refusals counts, on the server, the connections the chain refused with
// an error wrapping target, and how many of those refusals took
// refuseBound or longer: wsroute cut their close handshake short, so on
// a machine too loaded to write the close frame within the bound, the
// client saw the connection drop instead of the code.
type refusals struct {
	target  error
	n, slow atomic.Int32
}

// middleware goes first in the chain, so it sees what the limiter
// returns and how long its refusal took.
func (r *refusals) middleware(next wsroute.HandlerFunc) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) error {
		start := time.Now()
		err := next(ctx, c)
		if errors.Is(err, r.target) {
			if time.Since(start) >= refuseBound {
				r.slow.Add(1)
			}
			r.n.Add(1)
		}
		return err
	}
}

// check asserts that exactly want connections were refused, and that
// each refused client saw the refusal's close (code and reason), except
// at most one per refusal that the server's bound cut short.
func (r *refusals) check(t testing.TB, counts map[outcome]int, refused outcome, want int) {
	t.Helper()
	testutil.Eventually(t, func() bool { return int(r.n.Load()) >= want },
		"the server refused %d connections, want %d", r.n.Load(), want)
	testutil.Equal(t, int(r.n.Load()), want)
	dropped := 0
	for o, n := range counts {
		if o.status == http.StatusSwitchingProtocols && o.code == -1 {
			dropped += n
		}
	}
	testutil.Check(t, counts[refused]+dropped == want, "outcomes: %v, want %d %v", counts, want, refused)
	testutil.Check(t, dropped <= int(r.slow.Load()),
		"%d refused clients saw the connection drop, but only %d refusals took %v or more: outcomes %v",
		dropped, r.slow.Load(), refuseBound, counts)
}
