// Package docs_test holds the snippets of docs/guide.md that are not
// already examples of a package or part of the demo server (example/),
// so that every snippet of the guide compiles and, where it has an
// Output comment, runs as a test.
package docs_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echo is the Nexio basic example (example/handlers.go has the demo's).
func echo(ctx context.Context, c *wsroute.Conn) error {
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
}

// The key methods of a WebSocket, one after another: accept, receive
// and send bytes and text, close with a code and reason.
func Example_keyMethods() {
	handler := wsroute.Handle(func(ctx context.Context, ws *wsroute.Conn) error {
		if err := ws.Accept(ctx); err != nil { // await ws.accept()
			return err
		}
		data, err := ws.ReceiveBytes(ctx) // await ws.receive_bytes()
		if err != nil {
			return err
		}
		if err := ws.SendBytes(ctx, data); err != nil { // await ws.send_bytes(data)
			return err
		}
		text, err := ws.ReceiveText(ctx) // await ws.receive_text()
		if err != nil {
			return err
		}
		if err := ws.SendText(ctx, "got "+text); err != nil { // await ws.send_text(data)
			return err
		}
		// await ws.close(code=1003, reason="Invalid data type")
		return ws.Close(wsroute.StatusUnsupportedData, "Invalid data type")
	})

	srv := wstest.NewServer(handler)
	defer srv.Close()
	c, err := srv.Dial(context.Background(), "/", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.SendBytes([]byte{1, 2, 3})
	m, _ := c.Receive()
	fmt.Println(m.Type, m.Data)
	c.SendText("hello")
	fmt.Println(c.ReceiveText())
	code, reason, _ := c.ReadClose()
	fmt.Println(int(code), reason)
	// Output:
	// binary [1 2 3]
	// got hello <nil>
	// 1003 Invalid data type
}

// A graceful stop: http.Server.Shutdown closes the listener and waits
// for plain requests, the Tracker sends 1001 to every WebSocket and waits
// for their handlers.
func Example_gracefulShutdown() {
	tracker := wsroute.NewTracker()
	opts := &wsroute.Options{Tracker: tracker}
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", opts.Handle(echo))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	client, _, err := websocket.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws/echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseNow()
	read := make(chan error, 1)
	go func() {
		_, _, err := client.Read(context.Background())
		read <- err
	}()

	// On SIGTERM (see example/main.go):
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tracker.Shutdown(ctx) }() // 1001 to every WebSocket
	srv.Shutdown(ctx)                             // the listener, plain HTTP requests
	fmt.Println("tracker:", <-done)
	fmt.Println("serve:", <-served)

	fmt.Println("client:", websocket.CloseStatus(<-read))
	// Output:
	// tracker: <nil>
	// serve: http: Server closed
	// client: StatusGoingAway
}

// Authenticating browsers: a cookie (with the origin check that keeps
// other sites from using it), or the token in the subprotocol list.
func Example_browserAuth() {
	opts := &wsroute.Options{
		// Pages of the app's own origin may connect; same origin is
		// always allowed.
		OriginPatterns: []string{"app.example.com"},
	}
	auth := wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})
	hello := func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.SendText(ctx, "hello")
	}
	srv := wstest.NewServer(opts.Handle(auth(hello)))
	defer srv.Close()
	ctx := context.Background()
	cookie := "token=valid_token"

	// Another site's page, riding on the user's cookie: refused with
	// 403 before any middleware runs.
	_, err := srv.Dial(ctx, "/", &wstest.DialOptions{Header: http.Header{
		"Origin": {"https://evil.example"}, "Cookie": {cookie}}})
	fmt.Println("evil.example:", wstest.RefusedStatus(err))

	// The app's page, with the cookie.
	c, err := srv.Dial(ctx, "/", &wstest.DialOptions{Header: http.Header{
		"Origin": {"https://app.example.com"}, "Cookie": {cookie}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.ReceiveText())

	// new WebSocket(url, ["bearer", token]): Auth echoes "bearer".
	c, err = srv.Dial(ctx, "/", &wstest.DialOptions{Subprotocols: []string{"bearer", "valid_token"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, _ := c.ReceiveText()
	fmt.Println(c.Subprotocol(), msg)

	// No token: close 4001, which a browser can read (an HTTP 401 it
	// cannot).
	c, err = srv.Dial(ctx, "/", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	code, reason, _ := c.ReadClose()
	fmt.Println(int(code), reason)
	// Output:
	// evil.example: 403
	// hello <nil>
	// bearer hello
	// 4001 Unauthorized
}

// Settings for running behind a proxy or load balancer: pings more
// often than the proxy's idle timeout (nginx: proxy_read_timeout, 60 s by
// default), and a server that drops half-sent requests.
func Example_idleTimeouts() {
	opts := &wsroute.Options{
		PingInterval: 25 * time.Second, // under every idle timeout on the way
		PongTimeout:  20 * time.Second, // a peer that neither answers nor reads for this long is dead: closed
		WriteTimeout: 10 * time.Second, // a send that makes no progress for this long: dropped
	}
	srv := &http.Server{
		Addr:              "127.0.0.1:8080",
		Handler:           opts.Handle(echo),
		ReadHeaderTimeout: 10 * time.Second, // slowloris
	}

	// The same server on a free port, and a client through it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(websocket.StatusNormalClosure, "")
	c.Write(ctx, websocket.MessageText, []byte("still here"))
	_, reply, err := c.Read(ctx)
	fmt.Println(string(reply), err)
	// Output: Echo: still here <nil>
}

// Rooms that span processes: every instance builds its hub on the same
// Redis (example/redis.go does this for the demo's -redis flag). No Output
// line: it needs a Redis and a second process; hub/redisbroker's tests
// run the same thing across real instances.
func Example_redisRooms() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	rooms := hub.New(&hub.Options{
		Broker: redisbroker.New(client, &redisbroker.Options{Prefix: "myapp"}),
		// What presence lists show of a member, on every instance.
		Describe: func(c *wsroute.Conn) map[string]string {
			return map[string]string{"name": c.Query("name")}
		},
	})
	defer rooms.Shutdown(context.Background())

	http.Handle("/ws/rooms/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		room := c.Param("room")
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := rooms.Join(c, room); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			// Local members are served even when Redis is down; the
			// error then only says other instances were not reached.
			rooms.BroadcastText(ctx, room, msg, hub.Except(c))
		}
	}))
}

// TestEchoWithWstest is the guide's wstest recipe.
func TestEchoWithWstest(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", wsroute.Handle(echo))
	auth := wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})
	mux.Handle("/ws/secure/echo", wsroute.Handle(auth(echo)))
	srv := wstest.NewServer(mux)
	defer srv.Close()

	c, err := srv.Dial(t.Context(), "/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.ExpectText("Echo: hello"); err != nil {
		t.Fatal(err) // wstest: unexpected: got text "…", want text "Echo: hello"
	}
	if err := c.ExpectNoMessage(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}

	c, err = srv.Dial(t.Context(), "/ws/secure/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ExpectClose(4001); err != nil { // or ReadClose, for the reason too
		t.Fatal(err)
	}
}
