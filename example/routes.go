package main

import (
	"net/http"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// routes builds the demo's route table:
//
//	GET /                        the browser chat page
//	GET /static/                 its stylesheet and script
//	/ws/echo                     "Echo: m" for each text message m
//	/ws/user/{user_id}           "Welcome, User {user_id}!", then 1000
//	/ws/lifecycle                "Received: m"; disconnects are normal
//	/ws/error                    1011 "Something went wrong!"
//	/ws/broadcast                "Broadcast: m" to the route's other clients
//	/ws/chat                     m, unchanged, to the route's other clients
//	/ws/rooms/{room}             m, unchanged, to the room's other members
//	/ws/live/{room}              rooms with history and recovery (live.go)
//	/ws/secure/echo              /ws/echo behind Auth (token valid_token)
//	GET /stats                   JSON: connections, rooms, ...
//	GET /rooms/{room}/presence   JSON: who is in a room of /ws/rooms
//	GET /live/{room}/presence    JSON: who is in a room of /ws/live (the chat page)
//	GET /favicon.ico             the page's icon
//	GET /metrics                 Prometheus metrics (wsmw/wsmetrics)
//	GET /dashboard               live charts drawn from /metrics
//
// Every /ws/ route runs the same middleware first, in this order: the
// metrics middleware, Logger (one line per connection; both see every
// refusal), then RateLimit
// (every handshake attempt counts, before Auth, so over-limit clients see
// 4003 on any route and cannot guess tokens quickly). /ws/secure/echo
// adds Auth after them. The WebSocket routes take any method: wsroute
// answers what is not a GET upgrade (426, 405) itself.
func (a *app) routes() http.Handler {
	opts := &wsroute.Options{Tracker: a.tracker, Logger: a.log}
	common := []wsmw.Middleware{a.tel.conns.Middleware(), wsmw.Logger(a.log)}
	if a.cfg.Rate > 0 {
		// One limiter for all routes: a client's attempts count
		// together, wherever they go.
		common = append(common, wsmw.RateLimit(wsmw.RateLimitOptions{
			PerSecond: float64(a.cfg.Rate),
			Burst:     2 * a.cfg.Rate,
		}))
	}
	ws := func(fn wsroute.HandlerFunc, more ...wsmw.Middleware) http.Handler {
		mws := append(append([]wsmw.Middleware(nil), common...), more...)
		return opts.Handle(wsmw.Chain(mws...)(fn))
	}
	auth := wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})

	mux := http.NewServeMux()
	index, assets, icon := pageHandlers()
	mux.Handle("GET /{$}", index)
	mux.Handle("GET /static/", assets)
	mux.Handle("GET /favicon.ico", icon)

	mux.Handle("/ws/echo", ws(echo))
	mux.Handle("/ws/user/{user_id}", ws(user))
	mux.Handle("/ws/lifecycle", ws(lifecycle))
	mux.Handle("/ws/error", ws(failing))
	mux.Handle("/ws/broadcast", ws(broadcaster(a.local)))
	mux.Handle("/ws/chat", ws(chat(a.local)))
	mux.Handle("/ws/rooms/{room}", ws(a.room))
	mux.Handle("/ws/live/{room}", ws(a.liveRoom))
	mux.Handle("/ws/secure/echo", ws(echo, auth))

	mux.HandleFunc("GET /stats", a.stats)
	mux.HandleFunc("GET /rooms/{room}/presence", a.presence(a.rooms))
	mux.HandleFunc("GET /live/{room}/presence", a.presence(a.liveRooms))
	mux.Handle("GET /metrics", a.tel.handler())
	mux.Handle("GET /dashboard", dashboardHandler())
	return mux
}

// statsResponse is the body of GET /stats. Every number is this
// instance's.
type statsResponse struct {
	// Connections counts the accepted WebSocket connections still open,
	// on every route.
	Connections int `json:"connections"`
	// Rooms maps each room of /ws/rooms/{room} with members here to
	// their number.
	Rooms map[string]int `json:"rooms"`
	// Live maps each room of /ws/live/{room} with members here to their
	// number.
	Live map[string]int `json:"live"`
	// Broadcast and Chat count the clients of /ws/broadcast and /ws/chat.
	Broadcast int `json:"broadcast"`
	Chat      int `json:"chat"`
	// Node is this instance's name among those sharing -redis or -nats.
	Node string `json:"node"`
	// Redis is "off" without -redis, else "up" or "down" as of the
	// last ping (every second).
	Redis string `json:"redis"`
	// NATS is the same for -nats.
	NATS string `json:"nats"`
	// Hub holds the rooms hub's counters: broadcasts, messages out,
	// slow consumers, broker errors.
	Hub hub.Stats `json:"hub"`
}

// stats serves GET /stats.
func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	redis := "off"
	if a.redis != nil {
		redis = a.redis.status()
	}
	natsStatus := "off"
	if a.nats != nil {
		natsStatus = a.nats.status()
	}
	writeJSON(w, statsResponse{
		Connections: a.tracker.Len(),
		Rooms:       a.rooms.RoomCounts(),
		Live:        a.liveRooms.RoomCounts(),
		Broadcast:   a.local.Count("broadcast"),
		Chat:        a.local.Count("chat"),
		Node:        a.rooms.Node(),
		Redis:       redis,
		NATS:        natsStatus,
		Hub:         a.rooms.Stats(),
	})
}
