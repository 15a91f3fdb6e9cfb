package main

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func init() {
	register("gorilla",
		"gorilla/websocket v1.5.3 chat example: hub goroutine, 256-slot send chan, readPump + writePump",
		newGorilla)
}

// The constants of gorilla's chat example.
const (
	gWriteWait      = 10 * time.Second
	gPongWait       = 60 * time.Second
	gPingPeriod     = (gPongWait * 9) / 10
	gMaxMessageSize = 512
)

// gHub is the hub of gorilla's chat example (examples/chat/hub.go): one
// goroutine owns the client set and serves register, unregister and
// broadcast over channels; a client whose 256-slot send channel is full is
// dropped (its channel closed, which makes its writePump send a close).
type gHub struct {
	clients    map[*gClient]bool // owned by run
	broadcast  chan []byte
	register   chan *gClient
	unregister chan *gClient
	count      atomic.Int64 // len(clients), readable from /stats
}

type gClient struct {
	hub  *gHub
	conn *websocket.Conn
	send chan []byte
}

// run is the hub goroutine; like in the example it lives as long as the
// process.
func (h *gHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
			h.count.Store(int64(len(h.clients)))
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				delete(h.clients, c)
				close(c.send)
			}
			h.count.Store(int64(len(h.clients)))
		case msg := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- msg:
				default:
					close(c.send)
					delete(h.clients, c)
				}
			}
			h.count.Store(int64(len(h.clients)))
		}
	}
}

// readPump is the example's: read limit, pong-refreshed read deadline, and
// one action per message (onMessage). It ends when a read fails, and then
// unregisters the client and closes the connection.
func (c *gClient) readPump(onMessage func([]byte), registered bool) {
	defer func() {
		if registered {
			c.hub.unregister <- c
		}
		c.conn.Close()
	}()
	c.conn.SetReadLimit(gMaxMessageSize)
	_ = c.conn.SetReadDeadline(time.Now().Add(gPongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(gPongWait))
	})
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		onMessage(message)
	}
}

// writePump is the example's writer goroutine, with one change: the example
// appends the messages already queued to the current message, separated by
// newlines, which would merge several broadcasts into one WebSocket message.
// Here every message stays its own message (the benchmark client checks
// that), so the queued ones are written one by one. It ends when the send
// channel is closed or a write fails.
func (c *gClient) writePump() {
	ticker := time.NewTicker(gPingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(gWriteWait))
			if !ok {
				_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			_, _ = w.Write(message)
			if err := w.Close(); err != nil {
				return
			}
		case <-ticker.C:
			_ = c.conn.SetWriteDeadline(time.Now().Add(gWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// newGorilla is the gorilla/websocket chat hub: Upgrader with 1 KiB buffers,
// per client a readPump and a writePump goroutine started from serveWs (the
// HTTP handler goroutine returns right away), a hub goroutine.
func newGorilla() *impl {
	h := &gHub{
		clients:    map[*gClient]bool{},
		broadcast:  make(chan []byte),
		register:   make(chan *gClient),
		unregister: make(chan *gClient),
	}
	go h.run()
	upgrader := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

	room := func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &gClient{hub: h, conn: conn, send: make(chan []byte, 256)}
		h.register <- c
		go c.writePump()
		go c.readPump(func([]byte) {}, true)
	}
	// echo: the message goes to the client's own send channel, so the
	// writePump stays the connection's only writer.
	echo := func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &gClient{hub: h, conn: conn, send: make(chan []byte, 256)}
		go c.writePump()
		go func() {
			c.readPump(func(m []byte) { c.send <- m }, false)
			close(c.send) // ends the writePump
		}()
	}
	// pub: the publisher is not a member (it would get its own messages);
	// its readPump hands every message to the hub, as the example does.
	pub := func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &gClient{hub: h, conn: conn}
		go c.readPump(func(m []byte) { h.broadcast <- m }, false)
	}
	return &impl{
		echo:    http.HandlerFunc(echo),
		room:    http.HandlerFunc(room),
		pub:     http.HandlerFunc(pub),
		members: func() int { return int(h.count.Load()) },
	}
}
