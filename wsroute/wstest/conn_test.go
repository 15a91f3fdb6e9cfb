package wstest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

func TestSendAndExpect(t *testing.T) {
	t.Parallel()
	srv := wstest.NewServer(wsroute.Handle(echo))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)
	for _, m := range []string{"hello", "", "héllo", strings.Repeat("x", 60000)} {
		testutil.NoErr(t, c.SendText(m))
		testutil.NoErr(t, c.ExpectText("Echo: "+m))
	}
	testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, "bye"))
}

func TestExpectationFailures(t *testing.T) {
	t.Parallel()
	srv := wstest.NewServer(wsroute.Handle(echo))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)
	c.Timeout = 100 * time.Millisecond

	// A timeout leaves the connection open.
	_, err = c.Receive()
	testutil.Equal(t, errors.Is(err, wstest.ErrTimeout), true)
	testutil.NoErr(t, c.ExpectNoMessage(50*time.Millisecond))
	testutil.NoErr(t, c.SendText("a"))
	testutil.NoErr(t, c.ExpectText("Echo: a"))

	// A mismatch names what came.
	testutil.NoErr(t, c.SendText("b"))
	err = c.ExpectText("Echo: c")
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)
	testutil.Equal(t, strings.Contains(err.Error(), `"Echo: b"`), true)

	// A message where none was expected, or where a close was.
	testutil.NoErr(t, c.SendText("d"))
	err = c.ExpectNoMessage(time.Second)
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)
	testutil.NoErr(t, c.SendText("e"))
	_, _, err = c.ReadClose()
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)
}

func TestBinaryAndJSON(t *testing.T) {
	t.Parallel()
	srv := wstest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		for {
			typ, data, err := c.Receive(ctx)
			if err != nil {
				return err
			}
			if err := c.Send(ctx, typ, data); err != nil {
				return err
			}
		}
	}))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)

	testutil.NoErr(t, c.SendBytes([]byte{0, 1, 2}))
	testutil.NoErr(t, c.ExpectBytes([]byte{0, 1, 2}))

	testutil.NoErr(t, c.SendBytes([]byte{3}))
	_, err = c.ReceiveText()
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)

	testutil.NoErr(t, c.SendText("x"))
	err = c.ExpectBytes([]byte("x"))
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)

	type point struct{ X, Y int }
	testutil.NoErr(t, c.SendJSON(point{1, 2}))
	var p point
	testutil.NoErr(t, c.ReceiveJSON(&p))
	testutil.Equal(t, p, point{1, 2})

	testutil.NoErr(t, c.SendText("not json"))
	err = c.ReceiveJSON(&p)
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)
}

func TestCloseCodes(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		fn         wsroute.HandlerFunc
		wantCode   wsroute.StatusCode
		wantReason string
	}{
		{
			name: "close before accept",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return c.Close(4001, "Unauthorized")
			},
			wantCode:   4001,
			wantReason: "Unauthorized",
		},
		{
			name: "close error after accept",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return &wsroute.CloseError{Code: wsroute.StatusInternalError, Reason: "Something went wrong!"}
			},
			wantCode:   wsroute.StatusInternalError,
			wantReason: "Something went wrong!",
		},
		{
			name: "handler returns nil",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return c.Accept(ctx)
			},
			wantCode: wsroute.StatusNormalClosure,
		},
		{
			name: "panic",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				panic("boom")
			},
			wantCode:   wsroute.StatusInternalError,
			wantReason: "internal error",
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := wstest.NewServer((&wsroute.Options{Logger: discard}).Handle(tc.fn))
			t.Cleanup(srv.Close)
			c, err := srv.Dial(testutil.Ctx(t), "/", nil)
			testutil.NoErr(t, err)
			code, reason, err := c.ReadClose()
			testutil.NoErr(t, err)
			testutil.Equal(t, code, tc.wantCode)
			testutil.Equal(t, reason, tc.wantReason)

			// After the close, Receive reports it with the code.
			_, err = c.Receive()
			testutil.Equal(t, errors.Is(err, wstest.ErrClosed), true)
			testutil.Equal(t, wsroute.CloseStatus(err), tc.wantCode)
		})
	}
}

func TestExpectCloseNamesWhatCame(t *testing.T) {
	t.Parallel()
	srv := wstest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		return c.Close(4003, "Rate limit exceeded")
	}))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)
	err = c.ExpectClose(4001)
	testutil.Equal(t, errors.Is(err, wstest.ErrUnexpected), true)
	testutil.Equal(t, strings.Contains(err.Error(), `4003 "Rate limit exceeded"`), true)
}

func TestVanishedServerIs1006(t *testing.T) {
	t.Parallel()
	srv := wstest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server that accepts and drops the TCP connection without a
		// close frame.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"))
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)
	testutil.NoErr(t, c.ExpectClose(wsroute.StatusAbnormalClosure))
}

func TestClientClose(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	srv := wstest.NewServer(wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		_, err := c.ReceiveText(ctx)
		got <- err
		return err
	}))
	t.Cleanup(srv.Close)
	c, err := srv.Dial(testutil.Ctx(t), "/", nil)
	testutil.NoErr(t, err)
	err = c.Close(wsroute.StatusNoStatusRcvd, "")
	testutil.Equal(t, errors.Is(err, wsroute.ErrInvalidCloseCode), true)
	testutil.NoErr(t, c.Close(4100, "done"))
	err = <-got
	testutil.Equal(t, errors.Is(err, wsroute.ErrClosed), true)
	testutil.Equal(t, wsroute.CloseStatus(err), 4100)
	// Closing twice is harmless.
	testutil.NoErr(t, c.Close(wsroute.StatusNormalClosure, ""))
	c.CloseNow()
}
