package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

func init() {
	register("coderhub",
		"coder/websocket v1.8.15 + chat-example hub: chan of 256 per member, CloseRead, writeTimeout per message",
		newCoderHub)
}

// coderSub is one subscriber of the coder chat-example hub: a buffered
// channel drained by the subscriber's handler goroutine, which is the only
// writer of its connection.
type coderSub struct {
	msgs      chan []byte
	closeSlow func()
}

// newCoderHub is coder/websocket with "the usual per-client channel hub",
// written as coder's own chat example (internal/examples/chat) writes it:
// subscribers in a mutex-guarded map, publish does a non-blocking send to
// each subscriber's channel and kicks the ones that are full, the handler
// calls CloseRead (a second goroutine that reads and answers pings) and loops
// writing with a 5 s context.WithTimeout per message.
//
// Differences from the example, and why: the channel holds 256 messages
// (the example's 16 would kick members at a window of 32 in flight; 256 is
// what gorilla and melody use), and there is no publish rate limiter.
func newCoderHub() *impl {
	var (
		mu   sync.Mutex
		subs = map[*coderSub]struct{}{}
	)
	const buffer = 256

	publish := func(msg []byte) {
		mu.Lock()
		defer mu.Unlock()
		for s := range subs {
			select {
			case s.msgs <- msg:
			default:
				go s.closeSlow() // ends when Close returns (bounded by coder's close timeouts)
			}
		}
	}
	writeTimeout := func(ctx context.Context, c *websocket.Conn, msg []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.Write(ctx, websocket.MessageText, msg)
	}

	room := func(w http.ResponseWriter, r *http.Request) {
		var (
			cmu    sync.Mutex
			c      *websocket.Conn
			closed bool
		)
		s := &coderSub{
			msgs: make(chan []byte, buffer),
			closeSlow: func() {
				cmu.Lock()
				defer cmu.Unlock()
				closed = true
				if c != nil {
					c.Close(websocket.StatusPolicyViolation, "connection too slow to keep up with messages")
				}
			},
		}
		mu.Lock()
		subs[s] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(subs, s)
			mu.Unlock()
		}()

		c2, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		cmu.Lock()
		if closed {
			cmu.Unlock()
			return
		}
		c = c2
		cmu.Unlock()
		defer c.CloseNow()

		// CloseRead starts coder's reader goroutine; it ends (and cancels
		// ctx) when the client closes or vanishes.
		ctx := c.CloseRead(r.Context())
		for {
			select {
			case msg := <-s.msgs:
				if err := writeTimeout(ctx, c, msg); err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}

	// echo keeps the hub's rule that only the handler goroutine writes: a
	// reader goroutine hands each message to the same kind of channel.
	echo := func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		msgs := make(chan []byte, buffer)
		// The reader goroutine ends when Read fails: the client left, or
		// cancel above ran and CloseNow closed the connection.
		go func() {
			defer cancel()
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				select {
				case msgs <- data:
				case <-ctx.Done():
					return
				}
			}
		}()
		for {
			select {
			case msg := <-msgs:
				if err := writeTimeout(ctx, c, msg); err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}

	pub := func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			publish(data)
		}
	}

	return &impl{
		echo: http.HandlerFunc(echo),
		room: http.HandlerFunc(room),
		pub:  http.HandlerFunc(pub),
		members: func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(subs)
		},
	}
}
