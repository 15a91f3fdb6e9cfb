package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/wsroute/wstest"
)

// childEnv, when set, makes the test binary run the demo's main with
// these arguments instead of the tests: TestSignalShutdown starts it so
// as to send it a real SIGTERM.
const childEnv = "NEXIO_EXAMPLE_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childEnv); ok {
		os.Exit(mainWith(strings.Fields(args)))
	}
	// go-redis (v9.22) may leave one background redial goroutine behind
	// a Client that was closed while Redis was down (TestRedisOutageLater
	// stops Redis under the app); it ends on its own. Nothing else is
	// exempt.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// Tiny assertion helpers: tests read as plain Go.

// eventually polls cond until it holds or five seconds pass.
// logBuffer collects an app's log lines.
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

// lines returns the log lines that contain every one of words.
func (b *logBuffer) lines(words ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		all := l != ""
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// testApp is a demo server on a loopback address.
type testApp struct {
	*app
	srv  *wstest.Server
	logs *logBuffer
}

// start runs the demo with cfg (its Logger is set here) until the test
// ends.
func start(t testing.TB, cfg config) *testApp {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := newApp(cfg)
	testutil.NoErr(t, err)
	srv := wstest.NewServer(a.Handler())
	ta := &testApp{app: a, srv: srv, logs: logs}
	// Cleanups run last first: the graceful stop, then the server.
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return ta
}

// dial opens a connection to path, failing the test if it cannot.
func (ta *testApp) dial(t testing.TB, path string, opts *wstest.DialOptions) *wstest.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ta.srv.Dial(ctx, path, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	return c
}

// getJSON fetches path and decodes its JSON body into v.
func (ta *testApp) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := ta.srv.HTTP.Client().Get(ta.srv.HTTP.URL + path)
	testutil.NoErr(t, err)
	defer resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusOK)
	testutil.Equal(t, resp.Header.Get("Content-Type"), "application/json")
	// Into a zero value: decoding into one a poll filled before would
	// keep fields the new body leaves out (an omitempty name) in the
	// slice elements it reuses.
	reflect.ValueOf(v).Elem().SetZero()
	testutil.NoErr(t, json.NewDecoder(resp.Body).Decode(v))
}

// stats fetches GET /stats.
func (ta *testApp) statsNow(t testing.TB) statsResponse {
	t.Helper()
	var s statsResponse
	ta.getJSON(t, "/stats", &s)
	return s
}
