package wstest_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// TestRefusalsLookAsOnARealServer checks that every HTTP refusal reaches
// the test as the status a real client would see.
func TestRefusalsLookAsOnARealServer(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/ws/reject", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		c.ResponseHeader().Set("Retry-After", "3")
		return c.Reject(http.StatusTooManyRequests, "slow down")
	}))
	mux.Handle("/ws/echo", wsroute.Handle(echo))
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not a websocket", http.StatusTeapot)
	})
	srv := wstest.NewServer(mux)
	t.Cleanup(srv.Close)

	testCases := []struct {
		name       string
		path       string
		opts       *wstest.DialOptions
		wantStatus int
		wantBody   string
	}{
		{name: "reject", path: "/ws/reject", wantStatus: http.StatusTooManyRequests, wantBody: "slow down"},
		{name: "not found", path: "/nowhere", wantStatus: http.StatusNotFound},
		{name: "plain handler", path: "/plain", wantStatus: http.StatusTeapot, wantBody: "not a websocket"},
		{
			name:       "foreign origin",
			path:       "/ws/echo",
			opts:       &wstest.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}},
			wantStatus: http.StatusForbidden,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := srv.Dial(testutil.Ctx(t), tc.path, tc.opts)
			if err == nil {
				c.CloseNow()
				t.Fatal("Dial succeeded, want a refusal")
			}
			testutil.Equal(t, wstest.RefusedStatus(err), tc.wantStatus)
			var re *wstest.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RefusedError", err)
			}
			testutil.Equal(t, strings.Contains(re.Body, tc.wantBody), true)
		})
	}

	_, err := srv.Dial(testutil.Ctx(t), "/ws/reject", nil)
	var re *wstest.RefusedError
	errors.As(err, &re)
	testutil.Equal(t, re.Header.Get("Retry-After"), "3")

	// A plain GET on a WebSocket route is 426, through HTTP.
	resp, err := srv.HTTP.Client().Get(srv.HTTP.URL + "/ws/echo")
	testutil.NoErr(t, err)
	resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusUpgradeRequired)
}

func TestDialOptions(t *testing.T) {
	t.Parallel()
	opts := &wsroute.Options{Subprotocols: []string{"chat.v1"}}
	srv := wstest.NewServer(opts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, c.Header().Get("Authorization")+" "+c.Subprotocol()+" "+c.Query("q"))
	}))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "ws?q=1", &wstest.DialOptions{
		Header:       http.Header{"Authorization": {"Bearer t"}},
		Subprotocols: []string{"other", "chat.v1"},
	})
	testutil.NoErr(t, err)
	testutil.Equal(t, c.Subprotocol(), "chat.v1")
	testutil.Equal(t, c.Response().StatusCode, http.StatusSwitchingProtocols)
	testutil.NoErr(t, c.ExpectText("Bearer t chat.v1 1"))
	testutil.NoErr(t, c.ExpectClose(wsroute.StatusNormalClosure))
}

// TestCloseWaitsForHandlers checks that Server.Close drops the
// connections it dialed and returns only once their handlers have.
func TestCloseWaitsForHandlers(t *testing.T) {
	t.Parallel()
	var running atomic.Int32
	srv := wstest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		running.Add(1)
		defer running.Add(-1)
		return echo(ctx, c)
	}))
	for range 3 {
		c, err := srv.Dial(testutil.Ctx(t), "/", nil)
		testutil.NoErr(t, err)
		testutil.NoErr(t, c.SendText("x"))
		testutil.NoErr(t, c.ExpectText("Echo: x"))
	}
	testutil.Equal(t, running.Load(), 3)
	srv.Close()
	testutil.Equal(t, running.Load(), 0)
	srv.Close() // idempotent

	_, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.Equal(t, err != nil, true)
}
