package wsroute_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// opaqueWriter is the hand-written middleware mistake: a ResponseWriter
// wrapper with neither Hijack nor Unwrap.
type opaqueWriter struct{ http.ResponseWriter }

// TestFailedHijackIsAServerError: behind a wrapper that hides the
// connection, the client gets 500, and the server log says at ERROR what
// is wrong and how to fix it, not a quiet refusal at DEBUG.
func TestFailedHijackIsAServerError(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		wrap func(http.Handler) http.Handler
		want string // the writer type the log names
	}{
		{"wrapper without Unwrap", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(opaqueWriter{w}, r)
			})
		}, "wsroute_test.opaqueWriter"},
		{"http.TimeoutHandler", func(h http.Handler) http.Handler {
			return http.TimeoutHandler(h, time.Minute, "timeout")
		}, "timeoutWriter"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := testLogger(t)
			acceptErr := make(chan error, 1)
			route := (&wsroute.Options{Logger: logger}).Handle(func(ctx context.Context, c *wsroute.Conn) error {
				err := c.Accept(ctx)
				acceptErr <- err
				return err
			})
			srv := httptest.NewServer(tc.wrap(route))
			defer srv.Close()
			_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/"), nil)
			testutil.Check(t, err != nil, "the handshake succeeded through a writer that cannot hijack")
			testutil.Check(t, resp != nil, "no HTTP response: %v", err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			testutil.Equal(t, resp.StatusCode, http.StatusInternalServerError)
			aerr := <-acceptErr
			testutil.Check(t, aerr != nil && strings.Contains(aerr.Error(), "cannot hijack"), "Accept's error %v does not say the hijack failed", aerr)
			var line string
			testutil.Eventually(t, func() bool {
				for l := range strings.SplitSeq(logs.String(), "\n") {
					if strings.Contains(l, "level=ERROR") && strings.Contains(l, "cannot hijack") {
						line = l
						return true
					}
				}
				return false
			}, "no ERROR log about the failed hijack; logs:\n%s\nbody: %s", logs.String(), body)
			for _, want := range []string{tc.want, "Unwrap", "outside"} {
				testutil.Check(t, strings.Contains(line, want), "the log line does not mention %q:\n%s", want, line)
			}
		})
	}
}
