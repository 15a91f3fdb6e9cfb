package main

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub/natsbroker"
)

// natsLink is the demo's connection to NATS (-nats): the connection and
// the rooms hub's broker. The connection's own handlers log one line
// when NATS goes away and one when it is back.
type natsLink struct {
	nc     *nats.Conn
	broker *natsbroker.Broker
	// liveBroker carries /ws/live/{room} and keeps its history, under
	// subjects, a stream and buckets of its own (Prefix), so that a
	// room name means two rooms on the two routes.
	liveBroker *natsbroker.Broker
	down       atomic.Bool
}

// dialNATS prepares the link to the NATS server(s) at url
// ("nats://127.0.0.1:4222", or several, comma-separated). An unreachable
// NATS is not an error here: the client keeps trying in the background
// and rooms work on this instance meanwhile.
func dialNATS(url string, log *slog.Logger) (*natsLink, error) {
	l := &natsLink{}
	nc, err := nats.Connect(url,
		nats.Name("nexio demo"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if l.down.CompareAndSwap(false, true) {
				log.Warn("nats unreachable: /ws/rooms/{room} serves this instance's members only until it is back; retrying",
					"nats", url, "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			if l.down.CompareAndSwap(true, false) {
				log.Info("nats reachable again: /ws/rooms/{room} spans every instance", "nats", url)
			}
		}),
		nats.ConnectHandler(func(*nats.Conn) {
			if l.down.CompareAndSwap(true, false) {
				log.Info("nats reachable: /ws/rooms/{room} spans every instance", "nats", url)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("-nats %q: %w", url, err)
	}
	if nc.Status() != nats.CONNECTED && l.down.CompareAndSwap(false, true) {
		log.Warn("nats unreachable: /ws/rooms/{room} serves this instance's members only until it is back; retrying", "nats", url)
	}
	l.nc = nc
	// The connection's handlers report outages; the broker logs only
	// errors.
	brokerLog := slog.New(minLevel{h: log.Handler(), min: slog.LevelError})
	l.broker = natsbroker.New(nc, &natsbroker.Options{Logger: brokerLog})
	l.liveBroker = natsbroker.New(nc, &natsbroker.Options{Prefix: "nexio-live", Logger: brokerLog})
	return l, nil
}

// status is "up" or "down", for /stats.
func (l *natsLink) status() string {
	if l.nc.Status() == nats.CONNECTED {
		return "up"
	}
	return "down"
}

// close closes the connection. The rooms hub closes the broker; call this
// after the hub's Shutdown.
func (l *natsLink) close() error {
	l.nc.Close()
	return nil
}
