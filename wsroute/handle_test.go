package wsroute_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestPlainGETGets426(t *testing.T) {
	t.Parallel()
	var called atomic.Bool
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		called.Store(true)
		return nil
	})
	resp, err := http.Get(srv.URL + "/ws")
	testutil.NoErr(t, err)
	resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusUpgradeRequired)
	testutil.Equal(t, resp.Header.Get("Upgrade"), "websocket")
	testutil.Check(t, !called.Load(), "handler ran for a plain GET")
}

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws/echo", echo)
	c := dial(t, srv, "/ws/echo", nil)
	ctx := testutil.Ctx(t)
	for _, m := range []string{"hello", "", "héllo wörld", strings.Repeat("x", 10000)} {
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(m)))
		typ, got, err := c.Read(ctx)
		testutil.NoErr(t, err)
		testutil.Equal(t, typ, websocket.MessageText)
		testutil.Equal(t, string(got), "Echo: "+m)
	}
	testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestParamIsDecoded(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws/user/{user_id}", func(ctx context.Context, c *wsroute.Conn) error {
		user := c.Param("user_id")
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, fmt.Sprintf("Welcome, User %s! q=%s", user, c.Query("q")))
	})
	c := dial(t, srv, "/ws/user/al%20ice?q=1", nil)
	_, got, err := c.Read(testutil.Ctx(t))
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Welcome, User al ice! q=1")
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusNormalClosure)
}

// TestErrorsBecomeCloseCodes walks the table of the package documentation.
func TestErrorsBecomeCloseCodes(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		fn         func(ctx context.Context, c *wsroute.Conn) error
		send       func(ctx context.Context, c *websocket.Conn) error
		wantCode   websocket.StatusCode
		wantReason string
		wantLog    string
	}{
		{
			name:     "nil",
			fn:       func(ctx context.Context, c *wsroute.Conn) error { return nil },
			wantCode: websocket.StatusNormalClosure,
		},
		{
			name: "CloseError",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return &wsroute.CloseError{Code: 4000, Reason: "custom"}
			},
			wantCode: 4000, wantReason: "custom",
		},
		{
			name: "wrapped CloseError",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return fmt.Errorf("ctx: %w", &wsroute.CloseError{Code: 4002, Reason: "wrapped"})
			},
			wantCode: 4002, wantReason: "wrapped",
		},
		{
			name: "binary where text expected",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				_, err := c.ReceiveText(ctx)
				return err
			},
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageBinary, []byte{1, 2})
			},
			wantCode: websocket.StatusUnsupportedData,
			wantLog:  "level=INFO",
		},
		{
			name: "invalid UTF-8",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				_, err := c.ReceiveText(ctx)
				return err
			},
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageText, []byte{0xff, 0xfe})
			},
			wantCode: websocket.StatusInvalidFramePayloadData,
		},
		{
			name: "bad JSON",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				var v struct{ A int }
				return c.ReceiveJSON(ctx, &v)
			},
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageText, []byte(`{"A":"x"}`))
			},
			wantCode: websocket.StatusInvalidFramePayloadData,
			wantLog:  "level=INFO",
		},
		{
			name: "over the read limit",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				_, err := c.ReceiveText(ctx)
				return err
			},
			send: func(ctx context.Context, c *websocket.Conn) error {
				return c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("a", 64<<10+1)))
			},
			wantCode: websocket.StatusMessageTooBig,
		},
		{
			name: "other error",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return errors.New("db password is hunter2")
			},
			wantCode: websocket.StatusInternalError, wantReason: "internal error",
			wantLog: "db password is hunter2",
		},
		{
			name: "panic",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				var p *struct{ n int }
				return fmt.Errorf("%d", p.n) // nil dereference: a runtime panic
			},
			wantCode: websocket.StatusInternalError, wantReason: "internal error",
			wantLog: "goroutine",
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := testLogger(t)
			srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return tc.fn(ctx, c)
			})
			c := dial(t, srv, "/ws", nil)
			c.SetReadLimit(-1)
			if tc.send != nil {
				testutil.NoErr(t, tc.send(testutil.Ctx(t), c))
			}
			code, reason := readClose(t, c)
			testutil.Equal(t, code, tc.wantCode)
			if tc.wantReason != "" {
				testutil.Equal(t, reason, tc.wantReason)
			}
			testutil.Check(t, !strings.Contains(reason, "hunter2"), "internal error text leaked to the client: %q", reason)
			if tc.wantLog != "" {
				testutil.Eventually(t, func() bool { return strings.Contains(logs.String(), tc.wantLog) }, "log lacks %q:\n%s", tc.wantLog, logs)
			}
		})
	}
}

func TestServerKeepsServingAfterPanic(t *testing.T) {
	t.Parallel()
	logger, _ := testLogger(t)
	var n atomic.Int32
	srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		if n.Add(1) == 1 {
			c.Accept(ctx)
			panic("first connection panics")
		}
		return echo(ctx, c)
	})
	c := dial(t, srv, "/ws", nil)
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusInternalError)
	c2 := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c2.Write(ctx, websocket.MessageText, []byte("still here")))
	_, got, err := c2.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: still here")
	c2.Close(websocket.StatusNormalClosure, "")
}

func TestBeforeAccept(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		fn         wsroute.HandlerFunc
		wantStatus int    // HTTP refusal
		wantCode   int    // or a close code after an accept
		wantReason string //
	}{
		{
			name:       "nil without refusing",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return nil },
			wantStatus: http.StatusForbidden,
		},
		{
			name:       "error",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return errors.New("secret detail") },
			wantStatus: http.StatusInternalServerError,
		},
		{
			name:       "panic",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { panic("before accept") },
			wantStatus: http.StatusInternalServerError,
		},
		{
			name: "Reject",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				c.ResponseHeader().Set("Retry-After", "3")
				return c.Reject(http.StatusTooManyRequests, "slow down")
			},
			wantStatus: http.StatusTooManyRequests,
		},
		{
			name: "Close before Accept",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if c.Header().Get("Authorization") != "valid_token" {
					return c.Close(4001, "Unauthorized")
				}
				return c.Accept(ctx)
			},
			wantCode: 4001, wantReason: "Unauthorized",
		},
		{
			name: "CloseError before Accept",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return &wsroute.CloseError{Code: 4003, Reason: "Rate limit exceeded"}
			},
			wantCode: 4003, wantReason: "Rate limit exceeded",
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := testLogger(t)
			srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", tc.fn)
			c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
			if tc.wantStatus != 0 {
				testutil.Check(t, err != nil, "dial succeeded, want HTTP %d", tc.wantStatus)
				testutil.Equal(t, resp.StatusCode, tc.wantStatus)
				body, _ := io.ReadAll(resp.Body)
				testutil.Check(t, !strings.Contains(string(body), "secret"), "internal text leaked: %q", body)
				if tc.wantStatus == http.StatusTooManyRequests {
					testutil.Equal(t, resp.Header.Get("Retry-After"), "3")
				}
				return
			}
			testutil.NoErr(t, err)
			defer c.CloseNow()
			code, reason := readClose(t, c)
			testutil.Equal(t, int(code), tc.wantCode)
			testutil.Equal(t, reason, tc.wantReason)
			_ = logs
		})
	}
}

func TestAcceptTwice(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 2)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		errs <- c.Accept(ctx)
		errs <- c.Reject(400, "")
		return nil
	})
	c := dial(t, srv, "/ws", nil)
	readClose(t, c)
	testutil.Check(t, errors.Is(<-errs, wsroute.ErrAlreadyAccepted), "second Accept did not fail")
	testutil.Check(t, errors.Is(<-errs, wsroute.ErrAlreadyAccepted), "Reject after Accept did not fail")
}

func TestNotAccepted(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 3)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		errs <- c.SendText(ctx, "x")
		_, err := c.ReceiveText(ctx)
		errs <- err
		return c.Reject(http.StatusTeapot, "no")
	})
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.Check(t, err != nil, "dial succeeded")
	testutil.Equal(t, resp.StatusCode, http.StatusTeapot)
	testutil.Check(t, errors.Is(<-errs, wsroute.ErrNotAccepted), "SendText before Accept")
	testutil.Check(t, errors.Is(<-errs, wsroute.ErrNotAccepted), "ReceiveText before Accept")
}

// A handler that panics after it refused the handshake has a bug all
// the same: the panic is logged with its stack at Error, not lost in a
// Debug line about the refusal.
func TestPanicAfterRejectIsLogged(t *testing.T) {
	t.Parallel()
	logger, logs := testLogger(t)
	srv := serve(t, &wsroute.Options{Logger: logger}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		c.Reject(http.StatusUnauthorized, "no")
		panic("after reject")
	})
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.Check(t, err != nil, "dial succeeded, want HTTP 401")
	testutil.Equal(t, resp.StatusCode, http.StatusUnauthorized)
	testutil.Eventually(t, func() bool {
		s := logs.String()
		return strings.Contains(s, "level=ERROR") && strings.Contains(s, "after reject") && strings.Contains(s, "stack=")
	}, "the panic was not logged at Error with its stack: %s", logs)
}
