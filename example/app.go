package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// config is what the flags set.
type config struct {
	// Rate is how many WebSocket handshakes per second a client IP may
	// start on /ws/ routes, with bursts of twice that; 0 turns the limit
	// off.
	Rate int

	// RedisURL, when set, puts the rooms of /ws/rooms/{room} and
	// /ws/live/{room} on Redis so that they span every instance using the
	// same URL; the history of live rooms is then kept in Redis too.
	RedisURL string

	// NATSURL, when set, puts them on NATS (with JetStream) instead, the
	// history of live rooms included; it excludes RedisURL.
	NATSURL string

	// History is how many messages each room of /ws/live/{room} keeps
	// (for liveHistoryTTL after its last one); 0 keeps none, and a since=
	// is then never recovered.
	History int

	// Logger receives every log line. nil means slog.Default().
	Logger *slog.Logger
}

// app is the demo server: its routes and the state they share. Build it
// with newApp, serve app.Handler, stop it with app.Shutdown.
type app struct {
	cfg     config
	log     *slog.Logger
	tracker *wsroute.Tracker // every accepted connection, for Shutdown
	local   *hub.Hub         // /ws/broadcast and /ws/chat: this instance only
	rooms   *hub.Hub         // /ws/rooms/{room}: every instance on -redis
	// liveRooms serves /ws/live/{room}: every instance on -redis, with
	// history. A hub of its own, so that /ws/rooms/{room} stays a pure
	// relay (no history, no framing) and the same room name on both
	// routes are two rooms.
	liveRooms *hub.Hub
	// liveHistory is the messages each live room keeps: cfg.History,
	// or 0 when the broker keeps none.
	liveHistory int
	redis       *redisLink // nil without -redis
	nats        *natsLink  // nil without -nats
	tel         *telemetry // GET /metrics
	handler     http.Handler

	shutdownOnce sync.Once
	shutdownErr  error
}

// newApp builds the demo server. Only a malformed configuration is an
// error: an unreachable Redis is not (rooms work locally meanwhile, and
// the Redis watcher logs the outage once, then once more when Redis is
// back).
func newApp(cfg config) (*app, error) {
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("-rate must be 0 (off) or positive, got %d", cfg.Rate)
	}
	if cfg.RedisURL != "" && cfg.NATSURL != "" {
		return nil, fmt.Errorf("-redis and -nats are exclusive: the rooms span instances through one broker, pick one")
	}
	if cfg.History < 0 {
		return nil, fmt.Errorf("-history must be 0 (live only) or positive, got %d", cfg.History)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &app{cfg: cfg, log: cfg.Logger, tracker: wsroute.NewTracker(), tel: newTelemetry()}
	// Two hubs, so that only /ws/rooms/{room} ever reaches Redis: the
	// docs' broadcast and chat examples stay per instance.
	a.local = hub.New(&hub.Options{Logger: cfg.Logger, OnEnqueue: a.tel.localQueue.OnEnqueue()})
	live := hub.Options{
		Describe:   describe,
		OnEnqueue:  a.tel.liveQueue.OnEnqueue(),
		Stamp:      stampLive,
		Seam:       liveSeam,
		OnPresence: a.livePresence,
		Logger:     cfg.Logger,
	}
	if cfg.History > 0 {
		live.History = hub.History{Size: cfg.History, TTL: liveHistoryTTL}
	}
	// With -redis or -nats, each hub has a broker of its own (the same
	// connection, prefixes of their own).
	var broker, liveBroker hub.Broker
	switch {
	case cfg.RedisURL != "":
		l, err := dialRedis(cfg.RedisURL, cfg.Logger)
		if err != nil {
			a.local.Shutdown(context.Background())
			return nil, err
		}
		a.redis, broker, liveBroker = l, l.broker, l.liveBroker
	case cfg.NATSURL != "":
		l, err := dialNATS(cfg.NATSURL, cfg.Logger)
		if err != nil {
			a.local.Shutdown(context.Background())
			return nil, err
		}
		a.nats, broker, liveBroker = l, l.broker, l.liveBroker
	}
	if broker == nil {
		a.rooms = hub.New(&hub.Options{Describe: describe, Logger: cfg.Logger, OnEnqueue: a.tel.roomsQueue.OnEnqueue()})
		a.liveRooms = hub.New(&live)
	} else {
		// hub.New opens the broker and warns if it does not answer at
		// once; the Redis watcher (or the NATS connection's handlers)
		// says so already, in one line.
		h := &muteable{h: cfg.Logger.Handler()}
		h.muted.Store(true)
		a.rooms = hub.New(&hub.Options{Describe: describe, Logger: slog.New(h), Broker: a.tel.publish.Wrap(broker),
			OnEnqueue: a.tel.roomsQueue.OnEnqueue()})
		live.Logger, live.Broker = slog.New(h), liveBroker
		if _, ok := liveBroker.(hub.HistoryBroker); !ok && live.History.Size > 0 {
			// With a broker the history lives in its store; one that
			// keeps none leaves /ws/live live only, and says so.
			cfg.Logger.Warn("this broker keeps no history: /ws/live/{room} is live only, and a since= is never recovered")
			live.History = hub.History{}
		}
		a.liveRooms = hub.New(&live)
		h.muted.Store(false)
	}
	a.liveHistory = live.History.Size
	a.tel.register(a)
	a.handler = a.routes()
	return a, nil
}

// Handler returns the server's http.Handler: every route of the demo.
func (a *app) Handler() http.Handler { return a.handler }

// Shutdown stops the demo gracefully: every WebSocket client gets 1001
// "going away" (new ones too, until the process exits), then the hubs and
// the Redis connection are closed. It returns when everything has
// stopped or ctx has ended, whichever comes first; connections still open
// then are dropped. It is safe to call more than once.
func (a *app) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		// The tracker holds every accepted connection, room members
		// included: it closes them all at once and waits for their
		// handlers. The hubs then have no member left to close.
		err := a.tracker.Shutdown(ctx)
		err = errors.Join(err, a.local.Shutdown(ctx), a.rooms.Shutdown(ctx), a.liveRooms.Shutdown(ctx))
		if a.redis != nil {
			err = errors.Join(err, a.redis.close())
		}
		if a.nats != nil {
			err = errors.Join(err, a.nats.close())
		}
		a.shutdownErr = err
	})
	return a.shutdownErr
}

// muteable is a slog.Handler that drops every record while muted.
type muteable struct {
	h     slog.Handler
	muted atomic.Bool
}

func (m *muteable) Enabled(ctx context.Context, l slog.Level) bool {
	return !m.muted.Load() && m.h.Enabled(ctx, l)
}
func (m *muteable) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m *muteable) WithAttrs(as []slog.Attr) slog.Handler           { return m.h.WithAttrs(as) }
func (m *muteable) WithGroup(name string) slog.Handler              { return m.h.WithGroup(name) }
