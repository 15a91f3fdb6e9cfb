package wsroute_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

func TestCloseReasonIsCutAtUTF8Boundary(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100) // 200 bytes
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		return c.Close(4000, long)
	})
	c := dial(t, srv, "/ws", nil)
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4000)
	testutil.Check(t, len(reason) <= wsroute.MaxCloseReason, "reason is %d bytes", len(reason))
	testutil.Check(t, len(reason) >= wsroute.MaxCloseReason-1, "reason cut too short: %d bytes", len(reason))
	testutil.Check(t, utf8.ValidString(reason), "reason is not valid UTF-8: %q", reason)
	testutil.Check(t, strings.HasPrefix(long, reason), "reason is not a prefix")
}

func TestCloseRefusesCodesThatMayNotBeSent(t *testing.T) {
	t.Parallel()
	bad := []wsroute.StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		for _, code := range bad {
			if err := c.Close(code, "x"); !errors.Is(err, wsroute.ErrInvalidCloseCode) {
				t.Errorf("Close(%d) = %v, want ErrInvalidCloseCode", code, err)
			}
		}
		return echoLoop(ctx, c) // the connection is still open
	})
	c := dial(t, srv, "/ws", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("open?")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Echo: open?")
	c.Close(websocket.StatusNormalClosure, "")
}

func TestCloseIsIdempotentAndHarmlessAfterClientLeft(t *testing.T) {
	t.Parallel()
	results := make(chan error, 3)
	srv := serve(t, nil, "/ws/lifecycle", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		// The Nexio lifecycle example: finally close(1000).
		defer func() { results <- c.Close(wsroute.StatusNormalClosure, "Client disconnected") }()
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				results <- err
				results <- c.Close(wsroute.StatusNormalClosure, "again")
				return nil
			}
			if err := c.SendText(ctx, "Received: "+msg); err != nil {
				return err
			}
		}
	})
	c := dial(t, srv, "/ws/lifecycle", nil)
	ctx := testutil.Ctx(t)
	testutil.NoErr(t, c.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := c.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "Received: hi")
	testutil.NoErr(t, c.Close(websocket.StatusGoingAway, "bye"))
	recvErr := <-results
	testutil.Check(t, errors.Is(recvErr, wsroute.ErrClosed), "Receive error %v does not wrap ErrClosed", recvErr)
	testutil.Equal(t, wsroute.CloseStatus(recvErr), wsroute.StatusGoingAway)
	testutil.NoErr(t, <-results)
	testutil.NoErr(t, <-results)
}

func TestCloseIsBounded(t *testing.T) {
	t.Parallel()
	took := make(chan time.Duration, 1)
	srv := serve(t, &wsroute.Options{CloseTimeout: 200 * time.Millisecond}, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		testutil.NoErr(t, c.Accept(ctx))
		start := time.Now()
		c.Close(wsroute.StatusNormalClosure, "")
		took <- time.Since(start)
		return nil
	})
	// A raw client that completes the handshake and then never answers.
	nc := rawDial(t, srv, "/ws", nil)
	defer nc.Close()
	d := <-took
	testutil.Check(t, d < 5*time.Second, "Close took %v with CloseTimeout 200ms", d)
}

func TestCloseStatus(t *testing.T) {
	t.Parallel()
	testutil.Equal(t, wsroute.CloseStatus(nil), -1)
	testutil.Equal(t, wsroute.CloseStatus(errors.New("x")), -1)
	testutil.Equal(t, wsroute.CloseStatus(&wsroute.CloseError{Code: 4001}), 4001)
	testutil.Equal(t, wsroute.CloseStatus(websocket.CloseError{Code: 1001}), 1001)
}

// TestCloseBeforeAcceptEchoesASubprotocol: a browser that offered
// subprotocols fails a 101 without one, and would never see the code.
func TestCloseBeforeAcceptEchoesASubprotocol(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil, "/ws", func(ctx context.Context, c *wsroute.Conn) error {
		return c.Close(4001, "Unauthorized")
	})
	c, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{Subprotocols: []string{"bearer", "tok"}})
	testutil.NoErr(t, err)
	defer c.CloseNow()
	testutil.Equal(t, resp.Header.Get("Sec-WebSocket-Protocol"), "bearer")
	code, reason := readClose(t, c)
	testutil.Equal(t, code, 4001)
	testutil.Equal(t, reason, "Unauthorized")
}
