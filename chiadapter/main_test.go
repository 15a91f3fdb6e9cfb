package chiadapter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

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

func testOptions() (*wsroute.Options, *logBuffer) {
	var b logBuffer
	l := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &wsroute.Options{Logger: l}, &b
}

func start(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

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

// firstMessage dials path and returns the first text message, then
// hangs up.
func firstMessage(t testing.TB, srv *httptest.Server, path string, opts *websocket.DialOptions) string {
	t.Helper()
	c := dial(t, srv, path, opts)
	_, msg, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	c.Close(websocket.StatusNormalClosure, "")
	return string(msg)
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

func roundTrip(t testing.TB, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	return string(got)
}

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
