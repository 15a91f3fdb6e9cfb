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

// TestFramesSentWithTheHandshakeRequest pins assumption 18: frames that
// arrive in the same segment as the handshake request, which net/http
// read past the request, come out first and in order, on a connection
// held by its handler and on a detached one.
func TestFramesSentWithTheHandshakeRequest(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			srv := serve(t, nil, "/ws", mode.handle(echoMessage, nil))
			var frames []byte
			frames = append(frames, frame(true, 0, 0x1, []byte("one"), false)...)
			frames = append(frames, frame(true, 0, 0x9, []byte("p"), false)...)
			frames = append(frames, frame(true, 0, 0x1, []byte(strings.Repeat("two", 100)), false)...)
			nc, _ := rawDialSending(t, srv, "/ws", nil, frames)
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := nc.(*bufConn).br
			want := []string{"Echo: one", "Echo: " + strings.Repeat("two", 100)}
			pong := false
			for len(want) > 0 {
				f, err := readWireFrame(br)
				testutil.NoErr(t, err)
				if f.opcode == 0xA {
					pong = true
					continue
				}
				testutil.Equal(t, string(f.payload), want[0])
				want = want[1:]
			}
			if !pong {
				// The pong was read before the second echo was sent,
				// so it is on the wire before it.
				t.Fatal("no pong before the second echo")
			}
		})
	}
}
