package wstest_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

// Testing the Nexio echo example: send, expect the answer, close.
func ExampleNewServer() {
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
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
	}))
	srv := wstest.NewServer(mux)
	defer srv.Close()

	c, err := srv.Dial(context.Background(), "/ws/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.SendText("hello")
	msg, err := c.ReceiveText()
	fmt.Println(msg, err)
	// Expect calls say what came instead.
	c.SendText("again")
	fmt.Println(c.ExpectText("Echo: hello"))
	c.Close(wsroute.StatusNormalClosure, "")
	// Output:
	// Echo: hello <nil>
	// wstest: unexpected: got text "Echo: again", want text "Echo: hello"
}

// A refusal before Accept looks as on a real server: an HTTP status for
// Reject, a close code (what browsers can see) for Close.
func ExampleConn_ExpectClose() {
	mux := http.NewServeMux()
	mux.Handle("/ws/secure", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if c.Header().Get("Authorization") != "valid_token" {
			return c.Close(4001, "Unauthorized")
		}
		return c.Accept(ctx)
	}))
	mux.Handle("/ws/api", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		return c.Reject(http.StatusUnauthorized, "token required")
	}))
	srv := wstest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	c, err := srv.Dial(ctx, "/ws/secure", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.ExpectClose(4001))

	c, err = srv.Dial(ctx, "/ws/secure", &wstest.DialOptions{
		Header: http.Header{"Authorization": {"valid_token"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	code, reason, _ := c.ReadClose()
	fmt.Printf("%d %q\n", int(code), reason)

	_, err = srv.Dial(ctx, "/ws/api", nil)
	fmt.Println(wstest.RefusedStatus(err), err)
	// Output:
	// <nil>
	// 1000 ""
	// 401 wstest: handshake refused with HTTP 401 Unauthorized: token required
}
