package main

import (
	"encoding/json"
	"net/http"

	"github.com/centrifugal/centrifuge"
	"github.com/coder/websocket"
)

func init() {
	register("centrifuge",
		"centrifugal/centrifuge v0.40.1: Node with the memory broker, its WebSocket handler and JSON protocol (connect, subscribe), node.Publish; fanout and idle only",
		newCentrifuge)
	// Its clients speak its protocol, not bare frames: echo and
	// handshakes would not measure the same thing as for the others.
	implWorkloads["centrifuge"] = []string{"fanout", "idle"}
}

// newCentrifuge is centrifuge as its README starts a server: a Node whose
// OnConnecting lets every client in and whose OnSubscribe lets it
// subscribe, served by centrifuge.NewWebsocketHandler (write timeout
// raised to nexio's 10 s, see centrifugeWebsocket). Members connect and
// subscribe to channel "bench" with the JSON protocol (member.go); /pub is
// a plain WebSocket (coder/websocket) whose every message goes to
// node.Publish as a JSON string, which centrifuge encodes once and queues
// on every subscriber. No history, no recovery: the same as the others.
func newCentrifuge() *impl {
	node, err := newCentrifugeNode(false, centrifuge.SubscribeOptions{})
	if err == nil {
		err = node.Run()
	}
	if err != nil {
		panic("centrifuge: " + err.Error())
	}
	pub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			data, _ := json.Marshal(string(msg))
			if _, err := node.Publish(roomName, data); err != nil {
				c.Close(websocket.StatusInternalError, err.Error())
				return
			}
		}
	})
	return &impl{
		room:    centrifugeWebsocket(node),
		pub:     pub,
		members: func() int { return node.Hub().NumSubscribers(roomName) },
	}
}
