package wsroute_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// TestOnEnd walks the ways a connection can end and what OnEnd is told.
func TestOnEnd(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	testCases := []struct {
		name       string
		fn         wsroute.HandlerFunc
		client     func(ctx context.Context, c *websocket.Conn)
		wantStatus int // HTTP status the client sees (101 = dial succeeds)
		want       wsroute.ConnEnd
	}{
		{
			name: "accepted, handler returns nil",
			fn:   func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) },
			want: wsroute.ConnEnd{Accepted: true, Status: 101, Code: 1000},
		},
		{
			name: "accepted, handler returns a CloseError",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				return &wsroute.CloseError{Code: 1011, Reason: "Something went wrong!"}
			},
			want: wsroute.ConnEnd{Accepted: true, Status: 101, Code: 1011, Reason: "Something went wrong!",
				Err: &wsroute.CloseError{Code: 1011, Reason: "Something went wrong!"}},
		},
		{
			name: "peer closes first",
			fn:   echo,
			client: func(ctx context.Context, c *websocket.Conn) {
				c.Close(4000, "bye")
			},
			want: wsroute.ConnEnd{Accepted: true, Status: 101, Code: 4000, Reason: "bye", PeerClosed: true, Err: wsroute.ErrClosed},
		},
		{
			name: "peer vanishes",
			fn:   echo,
			client: func(ctx context.Context, c *websocket.Conn) {
				c.CloseNow()
			},
			want: wsroute.ConnEnd{Accepted: true, Status: 101, Code: 1006, PeerClosed: true, Err: wsroute.ErrClosed},
		},
		{
			// The handler is reading when Close is called: the peer's
			// echo of the close frame is read too, and must not make
			// the peer the closer.
			name: "this side closes while reading",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				if err := c.Accept(ctx); err != nil {
					return err
				}
				c.OnReceive(func(wsroute.MessageType, int) error {
					go c.Close(4002, "enough")
					return nil
				})
				for {
					if _, err := c.ReceiveText(ctx); err != nil {
						return err
					}
				}
			},
			client: func(ctx context.Context, c *websocket.Conn) {
				c.Write(ctx, websocket.MessageText, []byte("hi"))
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			},
			want: wsroute.ConnEnd{Accepted: true, Status: 101, Code: 4002, Reason: "enough", Err: wsroute.ErrClosed},
		},
		{
			name: "refused with a close code",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return c.Close(4001, "Unauthorized")
			},
			want: wsroute.ConnEnd{Status: 101, Code: 4001, Reason: "Unauthorized"},
		},
		{
			name: "refused with a returned CloseError",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return &wsroute.CloseError{Code: 4003, Reason: "Rate limit exceeded"}
			},
			want: wsroute.ConnEnd{Status: 101, Code: 4003, Reason: "Rate limit exceeded",
				Err: &wsroute.CloseError{Code: 4003, Reason: "Rate limit exceeded"}},
		},
		{
			name: "rejected over HTTP",
			fn: func(ctx context.Context, c *wsroute.Conn) error {
				return c.Reject(http.StatusUnauthorized, "Unauthorized")
			},
			wantStatus: 401,
			want:       wsroute.ConnEnd{Status: 401},
		},
		{
			name:       "neither accepted nor refused",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return nil },
			wantStatus: 403,
			want:       wsroute.ConnEnd{Status: 403},
		},
		{
			name:       "failed before accepting",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { return errBoom },
			wantStatus: 500,
			want:       wsroute.ConnEnd{Status: 500, Err: errBoom},
		},
		{
			name:       "panicked before accepting",
			fn:         func(ctx context.Context, c *wsroute.Conn) error { panic("boom") },
			wantStatus: 500,
			want:       wsroute.ConnEnd{Status: 500, Err: errors.New("wsroute: handler panicked: boom")},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ends := make(chan wsroute.ConnEnd, 2)
			l, _ := testLogger(t)
			srv := serve(t, &wsroute.Options{Logger: l}, "/", func(ctx context.Context, c *wsroute.Conn) error {
				c.OnEnd(func(e wsroute.ConnEnd) { ends <- e })
				return tc.fn(ctx, c)
			})
			ctx := testutil.Ctx(t)
			c, resp, err := websocket.Dial(ctx, wsURL(srv, "/"), nil)
			if tc.wantStatus != 0 {
				testutil.Check(t, err != nil, "dial succeeded, want status %d", tc.wantStatus)
				testutil.Equal(t, resp.StatusCode, tc.wantStatus)
			} else {
				testutil.NoErr(t, err)
				if tc.client != nil {
					tc.client(ctx, c)
				} else {
					readClose(t, c)
				}
				c.CloseNow()
			}
			got := <-ends
			testutil.Equal(t, got.Accepted, tc.want.Accepted)
			testutil.Equal(t, got.Status, tc.want.Status)
			testutil.Equal(t, got.Code, tc.want.Code)
			testutil.Equal(t, got.Reason, tc.want.Reason)
			testutil.Equal(t, got.PeerClosed, tc.want.PeerClosed)
			switch {
			case tc.want.Err == nil:
				testutil.Check(t, got.Err == nil, "Err = %v, want nil", got.Err)
			case errors.Is(tc.want.Err, wsroute.ErrClosed):
				testutil.Check(t, errors.Is(got.Err, wsroute.ErrClosed), "Err = %v, want ErrClosed", got.Err)
			default:
				testutil.Check(t, got.Err != nil && got.Err.Error() == tc.want.Err.Error(), "Err = %v, want %v", got.Err, tc.want.Err)
			}
			testutil.Check(t, len(ends) == 0, "OnEnd ran twice")
		})
	}
}

func TestOnAccept(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		fn   wsroute.HandlerFunc
		want int32
	}{
		{"Accept", func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) }, 1},
		{"AcceptWith", func(ctx context.Context, c *wsroute.Conn) error {
			return c.AcceptWith(ctx, wsroute.AcceptParams{})
		}, 1},
		{"Close before Accept", func(ctx context.Context, c *wsroute.Conn) error { return c.Close(4001, "no") }, 0},
		{"Reject", func(ctx context.Context, c *wsroute.Conn) error { return c.Reject(401, "") }, 0},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			done := make(chan struct{})
			srv := serve(t, nil, "/", func(ctx context.Context, c *wsroute.Conn) error {
				defer close(done)
				c.OnAccept(func() {
					testutil.Check(t, c.Accepted(), "OnAccept ran before the handshake")
					n.Add(1)
				})
				return tc.fn(ctx, c)
			})
			c, _, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/"), nil)
			if err == nil {
				readClose(t, c)
				c.CloseNow()
			}
			<-done
			testutil.Equal(t, n.Load(), tc.want)
		})
	}
}

func TestOnReceiveRefusal(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name       string
		refusal    error
		wantCode   websocket.StatusCode
		wantReason string
	}{
		{"CloseError", &wsroute.CloseError{Code: 1008, Reason: "message rate exceeded"}, 1008, "message rate exceeded"},
		{"wrapped CloseError", errors.Join(errors.New("x"), &wsroute.CloseError{Code: 4008, Reason: "slow down"}), 4008, "slow down"},
		{"plain error", errors.New("no"), 1008, "policy violation"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			handlerErr := make(chan error, 1)
			var seen []string
			srv := serve(t, nil, "/", func(ctx context.Context, c *wsroute.Conn) error {
				var n int
				c.OnReceive(func(typ wsroute.MessageType, size int) error {
					n++
					if n == 3 {
						return tc.refusal
					}
					return nil
				})
				if err := c.Accept(ctx); err != nil {
					return err
				}
				for {
					msg, err := c.ReceiveText(ctx)
					if err != nil {
						handlerErr <- err
						return err
					}
					seen = append(seen, msg)
				}
			})
			c := dial(t, srv, "/", nil)
			ctx := testutil.Ctx(t)
			for _, m := range []string{"a", "b", "c", "d"} {
				c.Write(ctx, websocket.MessageText, []byte(m))
			}
			code, reason := readClose(t, c)
			testutil.Equal(t, code, tc.wantCode)
			testutil.Equal(t, reason, tc.wantReason)
			err := <-handlerErr
			testutil.Check(t, errors.Is(err, wsroute.ErrClosed), "Receive error %v does not wrap ErrClosed", err)
			testutil.Check(t, errors.Is(err, tc.refusal) || strings.Contains(err.Error(), tc.refusal.Error()),
				"Receive error %v does not wrap the hook's error", err)
			testutil.Equal(t, strings.Join(seen, ""), "ab")
		})
	}
}

func TestOnReceiveSeesEveryMessage(t *testing.T) {
	t.Parallel()
	sizes := make(chan int, 10)
	srv := serve(t, nil, "/", func(ctx context.Context, c *wsroute.Conn) error {
		c.OnReceive(func(typ wsroute.MessageType, size int) error {
			sizes <- size
			return nil
		})
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return echoLoop(ctx, c)
	})
	c := dial(t, srv, "/", nil)
	ctx := testutil.Ctx(t)
	for _, m := range []string{"a", "bb", "ccc"} {
		testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte(m)))
		_, _, err := c.Read(ctx)
		testutil.NoErr(t, err)
		testutil.Equal(t, <-sizes, len(m))
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestOnEndPanicIsContained(t *testing.T) {
	t.Parallel()
	l, logs := testLogger(t)
	ran := make(chan string, 2)
	srv := serve(t, &wsroute.Options{Logger: l}, "/", func(ctx context.Context, c *wsroute.Conn) error {
		c.OnEnd(func(wsroute.ConnEnd) { ran <- "first" })
		c.OnEnd(func(wsroute.ConnEnd) { panic("observer bug") })
		return c.Accept(ctx)
	})
	c := dial(t, srv, "/", nil)
	code, _ := readClose(t, c)
	testutil.Equal(t, code, websocket.StatusNormalClosure)
	testutil.Equal(t, <-ran, "first")
	testutil.Eventually(t, func() bool { return strings.Contains(logs.String(), "OnEnd function panicked") },
		"the panic was not logged: %s", logs)
	// The server still serves.
	c2 := dial(t, srv, "/", nil)
	code, _ = readClose(t, c2)
	testutil.Equal(t, code, websocket.StatusNormalClosure)
	<-ran
}

func TestOnCloseRunsWhenTheConnectionEnds(t *testing.T) {
	t.Parallel()
	ran := make(chan string, 2)
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		c.OnClose(func() { ran <- "registered while open" })
		_, err := c.ReceiveText(ctx)
		<-c.Done()
		c.OnClose(func() { ran <- "registered after the end" })
		return err
	})
	c := dial(t, srv, "/ws", nil)
	c.CloseNow() // the client vanishes
	got := map[string]bool{}
	for range 2 {
		select {
		case s := <-ran:
			got[s] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("OnClose functions ran: %v", got)
		}
	}
}
