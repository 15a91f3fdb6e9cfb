package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// The Nexio broadcast example, without its flaws: each message goes to
// every other member of the room; slow or dead clients cannot stall it.
func Example() {
	h := hub.New(nil)
	defer h.Shutdown(context.Background())
	joined := make(chan struct{}, 2)

	mux := http.NewServeMux()
	mux.Handle("/ws/rooms/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		room := c.Param("room")
		if err := h.Join(c, room); err != nil {
			return err
		}
		joined <- struct{}{}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if err := h.BroadcastText(ctx, room, "Broadcast: "+msg, hub.Except(c)); err != nil {
				return err
			}
		}
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/rooms/lobby"
	alice, _, _ := websocket.Dial(ctx, url, nil)
	defer alice.CloseNow()
	bob, _, _ := websocket.Dial(ctx, url, nil)
	defer bob.CloseNow()
	<-joined
	<-joined

	alice.Write(ctx, websocket.MessageText, []byte("hi from alice"))
	_, msg, _ := bob.Read(ctx)
	fmt.Println(string(msg))
	fmt.Println(h.Count("lobby"), "members")
	// Output:
	// Broadcast: hi from alice
	// 2 members
}

// A chat room whose members resume where they left off: each message
// reaches members as "epoch offset text", and a client that reconnects
// with ?since=epoch:offset gets what it missed, then the live messages.
func ExampleHub_JoinFrom() {
	h := hub.New(&hub.Options{
		History: hub.History{Size: 1000, TTL: 10 * time.Minute},
		// What members receive: the position first, so a client knows
		// where to resume from.
		Stamp: func(room string, pos hub.Position, typ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte) {
			return typ, fmt.Appendf(nil, "%s %d %s", pos.Epoch, pos.Offset, data)
		},
	})
	defer h.Shutdown(context.Background())
	recoveries := make(chan hub.Recovery, 2)

	mux := http.NewServeMux()
	mux.Handle("/ws/chat/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		var since hub.Position // zero: join live
		if s := c.Query("since"); s != "" {
			epoch, offset, _ := strings.Cut(s, ":")
			n, err := strconv.ParseUint(offset, 10, 64)
			if err != nil {
				return c.Reject(http.StatusBadRequest, "since must be epoch:offset")
			}
			since = hub.Position{Epoch: epoch, Offset: n}
		}
		// Before Accept: once the client has its 101, it is a member.
		rec, err := h.JoinFrom(c, c.Param("room"), since)
		if err != nil {
			return err
		}
		if !rec.Recovered {
			// Some of what it missed is gone: the client reloads the
			// room from the application's database. SendTo goes
			// through the member's queue, in order with the room.
			h.SendTo(ctx, c.ID(), wsroute.MessageText, []byte(`{"recovered":false}`))
		}
		recoveries <- rec
		if err := c.Accept(ctx); err != nil {
			return err
		}
		for {
			if _, err := c.ReceiveText(ctx); err != nil {
				return err
			}
		}
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/chat/lobby"
	ctx := context.Background()
	say := func(text string) { h.Publish(ctx, "lobby", wsroute.MessageText, []byte(text)) }
	var last string // the client's "epoch:offset"
	show := func(c *websocket.Conn) {
		_, b, _ := c.Read(ctx)
		f := strings.SplitN(string(b), " ", 3)
		last = f[0] + ":" + f[1]
		fmt.Println(f[1], f[2])
	}

	alice, _, _ := websocket.Dial(ctx, url, nil)
	<-recoveries
	say("hi")
	say("anyone here?")
	show(alice)
	show(alice)
	alice.CloseNow() // her train enters a tunnel

	say("bob: hello alice")
	say("bob: are you there?")

	alice, _, _ = websocket.Dial(ctx, url+"?since="+last, nil)
	defer alice.CloseNow()
	rec := <-recoveries
	fmt.Println("recovered:", rec.Recovered, "missed:", rec.Missed)
	show(alice)
	show(alice)
	say("alice: back!")
	show(alice)
	// Output:
	// 1 hi
	// 2 anyone here?
	// recovered: true missed: 2
	// 3 bob: hello alice
	// 4 bob: are you there?
	// 5 alice: back!
}
