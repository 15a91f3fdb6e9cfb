package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

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
