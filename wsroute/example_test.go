package wsroute_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
)

// The Nexio echo example: every text message is answered with "Echo: ".
func ExampleHandle() {
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
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/echo", nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	client.Write(ctx, websocket.MessageText, []byte("hello"))
	_, reply, _ := client.Read(ctx)
	fmt.Println(string(reply))
	client.Close(websocket.StatusNormalClosure, "")
	// Output: Echo: hello
}

// Route parameters come from http.ServeMux patterns (or chi), decoded.
func ExampleConn_Param() {
	mux := http.NewServeMux()
	mux.Handle("/ws/user/{user_id}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		userID := c.Param("user_id")
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, fmt.Sprintf("Welcome, User %s!", userID))
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/user/al%20ice", nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	_, msg, _ := client.Read(ctx)
	fmt.Println(string(msg))
	// Output: Welcome, User al ice!
}

// Closing before Accept refuses a connection so that a browser sees the
// code, as the Nexio auth middleware does with 4001.
func ExampleConn_Close() {
	h := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if c.Header().Get("Authorization") != "valid_token" {
			return c.Close(4001, "Unauthorized")
		}
		return c.Accept(ctx)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	_, _, err = client.Read(ctx)
	fmt.Println(int(websocket.CloseStatus(err)))
	// Output: 4001
}

// Returning an error decides the close code: here the Nexio error example,
// 1011 with a reason.
func ExampleCloseError() {
	h := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return &wsroute.CloseError{Code: wsroute.StatusInternalError, Reason: "Something went wrong!"}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	_, _, err = client.Read(ctx)
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		fmt.Println(int(ce.Code), ce.Reason)
	}
	// Output: 1011 Something went wrong!
}

// A handler that only sends: CloseRead keeps the connection read, so it
// learns at once that the client left.
func ExampleConn_CloseRead() {
	h := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		c.CloseRead()
		for i := 0; ; i++ {
			select {
			case <-c.Done():
				return nil
			default:
			}
			if err := c.SendText(ctx, fmt.Sprint("tick ", i)); err != nil {
				return err
			}
			if i == 2 {
				<-c.Done()
				return nil
			}
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	for range 3 {
		_, msg, _ := client.Read(ctx)
		fmt.Println(string(msg))
	}
	client.Close(websocket.StatusNormalClosure, "bye")
	// Output:
	// tick 0
	// tick 1
	// tick 2
}

// A connection's life is one state machine: Done, the handler's ctx and
// the OnClose functions end and start when it reaches StateClosed.
func ExampleConn_State() {
	steps := make(chan string, 8)
	mux := http.NewServeMux()
	mux.Handle("/ws", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		defer close(steps)
		steps <- "before Accept: " + c.State().String()
		if err := c.Accept(ctx); err != nil {
			return err
		}
		steps <- "after Accept: " + c.State().String()
		c.Close(wsroute.StatusNormalClosure, "bye")
		<-c.Done() // already closed: Close returns once the socket is closed
		steps <- "after Close: " + c.State().String()
		return nil
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	client.Read(context.Background()) // answers the close
	for s := range steps {
		fmt.Println(s)
	}
	// Output:
	// before Accept: handshake
	// after Accept: open
	// after Close: closed
}

// The echo example with Detach: the handler returns once the connection
// is accepted, and the message function answers each message. An idle
// connection then keeps no handler goroutine; what the function returns
// ends the connection as a handler's error would (here a CloseError).
func ExampleConn_Detach() {
	h := wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
			if m.Text() == "bye" {
				return &wsroute.CloseError{Code: wsroute.StatusNormalClosure, Reason: "see you"}
			}
			return c.SendText(ctx, "Echo: "+m.Text())
		})
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseNow()
	for _, msg := range []string{"hello", "again"} {
		client.Write(ctx, websocket.MessageText, []byte(msg))
		_, reply, _ := client.Read(ctx)
		fmt.Println(string(reply))
	}
	client.Write(ctx, websocket.MessageText, []byte("bye"))
	_, _, err = client.Read(ctx)
	var ce websocket.CloseError
	errors.As(err, &ce)
	fmt.Println(ce.Code, ce.Reason)
	// Output:
	// Echo: hello
	// Echo: again
	// StatusNormalClosure see you
}
