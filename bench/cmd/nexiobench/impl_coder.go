package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

func init() {
	register("coder",
		"coder/websocket v1.8.15, handler loop; /pub writes to each member in turn",
		newCoder)
}

// newCoder is raw coder/websocket the way its README shows it: Accept, then
// a handler loop on Read. There is no hub: the room is a mutex-guarded set,
// and /pub writes each message to every member itself, one after another
// (coder's Conn allows a Write concurrent with the member's own Read).
//
// Each handler goroutine is net/http's; it ends when Read fails, i.e. when
// the client leaves or the process exits.
func newCoder() *impl {
	var (
		mu      sync.RWMutex
		members = map[*websocket.Conn]struct{}{}
	)
	echo := func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}
	room := func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		mu.Lock()
		members[c] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(members, c)
			mu.Unlock()
		}()
		// Members send nothing; reading keeps pings answered and ends the
		// handler when the client goes.
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
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
		var snapshot []*websocket.Conn // reused: the publisher's own buffer
		for {
			_, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			snapshot = snapshot[:0]
			mu.RLock()
			for m := range members {
				snapshot = append(snapshot, m)
			}
			mu.RUnlock()
			// One deadline for the whole broadcast: a member that stops
			// reading stalls this loop for at most 10 s.
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			for _, m := range snapshot {
				_ = m.Write(ctx, websocket.MessageText, data)
			}
			cancel()
		}
	}
	return &impl{
		echo: http.HandlerFunc(echo),
		room: http.HandlerFunc(room),
		pub:  http.HandlerFunc(pub),
		members: func() int {
			mu.RLock()
			defer mu.RUnlock()
			return len(members)
		},
	}
}
