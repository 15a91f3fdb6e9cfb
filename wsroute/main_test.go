package wsroute_test

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
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/wsroute"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzSrv != nil {
		fuzzSrv.Close()
	}
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

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// serve mounts fn on a ServeMux at pattern and starts a server.
func serve(t testing.TB, opts *wsroute.Options, pattern string, fn wsroute.HandlerFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(pattern, opts.Handle(fn))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func dial(t testing.TB, srv *httptest.Server, path string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(srv, path), opts)
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

// echo is the Nexio echo example.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	return echoLoop(ctx, c)
}

// echoLoop answers each text message with "Echo: " and the message.
func echoLoop(ctx context.Context, c *wsroute.Conn) error {
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

// eventually polls cond until it holds or five seconds pass.
