package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub/redisbroker"
)

// redisLink is the demo's connection to Redis (-redis): the client, the
// rooms hub's broker, and a watcher that owns the one log line saying
// Redis is unreachable.
type redisLink struct {
	client *redis.Client
	broker *redisbroker.Broker // /ws/rooms/{room}
	// liveBroker carries /ws/live/{room} and keeps its history, under
	// keys and channels of its own (Prefix), so that a room name means
	// two rooms on the two routes.
	liveBroker *redisbroker.Broker
	addr       string
	log        *slog.Logger

	down atomic.Bool // Redis did not answer the last ping

	// The watcher goroutine (watch) pings Redis every watchEvery; it
	// ends when stop is called, which waits for it.
	cancel context.CancelFunc
	done   chan struct{}
}

const (
	watchEvery   = time.Second
	watchTimeout = 500 * time.Millisecond
)

// quietRedisLogs sends go-redis' own log lines (one per failed dial,
// many per second while Redis is down) to slog.Default at debug level:
// the watcher reports outages once.
var quietRedisLogs sync.Once

type redisDebugLog struct{}

func (redisDebugLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// dialRedis prepares the link to the Redis at url
// ("redis://127.0.0.1:6379/0"). Nothing is dialed: go-redis connects on
// first use and the broker reconnects by itself, so an unreachable Redis
// is not an error here.
func dialRedis(url string, log *slog.Logger) (*redisLink, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis %q: %w", url, err)
	}
	quietRedisLogs.Do(func() { redis.SetLogger(redisDebugLog{}) })
	client := redis.NewClient(opts)
	// The broker's own outage lines come in pairs (commands and the
	// subscription fail separately): the watcher reports outages
	// instead, once, and the broker logs only errors.
	brokerLog := slog.New(minLevel{h: log.Handler(), min: slog.LevelError})
	l := &redisLink{
		client:     client,
		broker:     redisbroker.New(client, &redisbroker.Options{Logger: brokerLog}),
		liveBroker: redisbroker.New(client, &redisbroker.Options{Prefix: "nexio-live", Logger: brokerLog}),
		addr:       opts.Addr,
		log:        log,
		done:       make(chan struct{}),
	}
	var ctx context.Context
	ctx, l.cancel = context.WithCancel(context.Background())
	go l.watch(ctx)
	return l, nil
}

// watch pings Redis until ctx ends, logging one line when it stops
// answering and one when it is back.
func (l *redisLink) watch(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, watchTimeout)
		err := l.client.Ping(pctx).Err()
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && l.down.CompareAndSwap(false, true):
			l.log.Warn("redis unreachable: /ws/rooms/{room} serves this instance's members only, and /ws/live/{room} cannot publish, until it is back; retrying",
				"redis", l.addr, "error", err)
		case err == nil && l.down.CompareAndSwap(true, false):
			l.log.Info("redis reachable again: /ws/rooms/{room} and /ws/live/{room} span every instance", "redis", l.addr)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// status is "up" or "down", as of the last ping, for /stats.
func (l *redisLink) status() string {
	if l.down.Load() {
		return "down"
	}
	return "up"
}

// close stops the watcher and closes the client. The rooms hubs close
// the brokers; call this after the hubs' Shutdown.
func (l *redisLink) close() error {
	l.cancel()
	<-l.done
	return l.client.Close()
}

// minLevel is a slog.Handler that drops records below min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
