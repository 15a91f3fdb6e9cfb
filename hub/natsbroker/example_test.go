package natsbroker_test

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// Rooms that span every instance connected to the same NATS (with
// JetStream): run the program twice, and members of /ws/rooms/lobby on
// either hear each other. (No Output line: it needs a NATS server and
// serves until stopped; natsbroker's tests run the same across real
// instances.)
func Example() {
	serve := func() error {
		nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
		if err != nil {
			return err
		}
		defer nc.Close()
		rooms := hub.New(&hub.Options{Broker: natsbroker.New(nc, &natsbroker.Options{Prefix: "myapp"})})
		defer rooms.Shutdown(context.Background())

		mux := http.NewServeMux()
		mux.Handle("/ws/rooms/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
			room := c.Param("room")
			if err := rooms.Join(c, room); err != nil {
				return err
			}
			if err := c.Accept(ctx); err != nil {
				return err
			}
			for msg, err := range c.Messages(ctx) {
				if err != nil {
					return err
				}
				rooms.Broadcast(ctx, room, msg.Type, msg.Data, hub.Except(c))
			}
			return nil
		}))
		return http.ListenAndServe("127.0.0.1:8080", mux)
	}
	_ = serve
}
