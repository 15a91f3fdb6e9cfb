package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexio-go/nexio/wsmw/wsmetrics"
)

// telemetry is what GET /metrics shows: every WebSocket route's
// connections (the middleware runs first on each /ws/ route), the hubs
// with their queue lengths, the Redis broker with -redis, and the Go
// runtime. The registry is the demo's own, not Prometheus' global one,
// so that tests can start several apps in one process.
type telemetry struct {
	reg        *prometheus.Registry
	conns      *wsmetrics.Metrics
	localQueue *wsmetrics.QueueLength    // hub "local": /ws/broadcast and /ws/chat
	roomsQueue *wsmetrics.QueueLength    // hub "rooms": /ws/rooms/{room}
	liveQueue  *wsmetrics.QueueLength    // hub "live": /ws/live/{room}
	publish    *wsmetrics.PublishLatency // the rooms hub's publishes through Redis
}

// newTelemetry is called before the hubs exist: their Options take the
// queue histograms' OnEnqueue, and the rooms hub the broker as wrapped
// by publish.
func newTelemetry() *telemetry {
	return &telemetry{
		reg:        prometheus.NewRegistry(),
		conns:      wsmetrics.Connections(nil),
		localQueue: wsmetrics.NewQueueLength("local", nil),
		roomsQueue: wsmetrics.NewQueueLength("rooms", nil),
		liveQueue:  wsmetrics.NewQueueLength("live", nil),
		publish:    wsmetrics.NewPublishLatency("redis", nil),
	}
}

// register adds a's hubs and broker once they exist. The broadcast and
// chat rooms have fixed names, so their member counts may be labels;
// the rooms of /ws/rooms/{room} are named by clients, so they never are.
func (tm *telemetry) register(a *app) {
	tm.reg.MustRegister(
		tm.conns, tm.localQueue, tm.roomsQueue, tm.liveQueue,
		wsmetrics.HubCollector("local", a.local, &wsmetrics.HubOptions{Rooms: []string{"broadcast", "chat"}}),
		wsmetrics.HubCollector("rooms", a.rooms, nil),
		wsmetrics.HubCollector("live", a.liveRooms, nil),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if a.redis != nil {
		tm.reg.MustRegister(wsmetrics.BrokerCollector("redis", a.redis.broker.Stats), tm.publish)
	}
	if l := a.redis; l != nil {
		// /ws/live/{room}'s own broker: its keys and its history.
		tm.reg.MustRegister(wsmetrics.BrokerCollector("redis-live", l.liveBroker.Stats))
	}
	if l := a.nats; l != nil {
		tm.reg.MustRegister(wsmetrics.BrokerCollector("nats", l.broker.Stats), tm.publish,
			wsmetrics.BrokerCollector("nats-live", l.liveBroker.Stats))
	}
}

// handler serves GET /metrics in Prometheus' text format.
func (tm *telemetry) handler() http.Handler {
	return promhttp.HandlerFor(tm.reg, promhttp.HandlerOpts{})
}
