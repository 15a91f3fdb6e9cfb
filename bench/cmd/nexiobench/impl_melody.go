package main

import (
	"net/http"
	"sync/atomic"

	"github.com/olahol/melody"
)

func init() {
	register("melody",
		"olahol/melody v1.1.4 defaults (on gorilla/websocket): HandleRequest + BroadcastOthers",
		newMelody)
}

// newMelody is olahol/melody as its README shows it: a Melody value per
// endpoint, HandleRequest in the HTTP handler, HandleMessage to act on
// messages. Room members and the publisher share one Melody (melody's unit
// of broadcast); the publisher uses BroadcastOthers so it does not receive
// its own messages. Configuration is melody's default (256-message buffer,
// 512-byte read limit, 60 s pong wait). Per session melody runs its
// readPump in the handler goroutine and a writePump goroutine; both end
// when the connection does.
func newMelody() *impl {
	mEcho := melody.New()
	mEcho.HandleMessage(func(s *melody.Session, msg []byte) {
		_ = s.Write(msg)
	})

	mRoom := melody.New()
	var members atomic.Int64
	isMember := func(s *melody.Session) bool { return s.Request.URL.Path == "/room" }
	mRoom.HandleConnect(func(s *melody.Session) {
		if isMember(s) {
			members.Add(1)
		}
	})
	mRoom.HandleDisconnect(func(s *melody.Session) {
		if isMember(s) {
			members.Add(-1)
		}
	})
	mRoom.HandleMessage(func(s *melody.Session, msg []byte) {
		if !isMember(s) {
			_ = mRoom.BroadcastOthers(msg, s)
		}
	})

	room := func(w http.ResponseWriter, r *http.Request) { _ = mRoom.HandleRequest(w, r) }
	return &impl{
		echo:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = mEcho.HandleRequest(w, r) }),
		room:    http.HandlerFunc(room),
		pub:     http.HandlerFunc(room),
		members: func() int { return int(members.Load()) },
	}
}
