// Package wsmetrics exports Prometheus metrics for nexio's connections,
// hubs and brokers, in the names and types operators alert on. It is
// the only nexio package that imports Prometheus' client: wsroute, wsmw
// and hub stay free of it.
//
//	m := wsmetrics.Connections(nil)
//	q := wsmetrics.NewQueueLength("rooms", nil)
//	h := hub.New(&hub.Options{OnEnqueue: q.OnEnqueue()})
//	prometheus.MustRegister(m, q, wsmetrics.HubCollector("rooms", h, nil))
//	mux.Handle("/ws/rooms/{room}", wsroute.Handle(wsmw.Chain(m.Middleware(), wsmw.Logger(nil))(handler)))
//	mux.Handle("/metrics", promhttp.Handler())
//
// # Connections
//
// [Metrics] is a middleware ([Metrics.Middleware]) and a
// prometheus.Collector. Per route pattern, never per raw path, it counts
// handshakes by outcome, open connections, how long they lasted, their
// close codes and which side closed, and the messages and bytes in and
// out. The traffic counters are read from each open connection's
// wsroute.Conn.Stats when Prometheus scrapes: a message costs nothing
// more than without the middleware, a handshake a map insert and a few
// counter increments.
//
// # Hubs and brokers
//
// [HubCollector] exports a hub's hub.Stats, and [BrokerCollector] any
// broker's Stats struct (redisbroker's, and others' that follow its
// shape), both read when scraped. [PublishLatency] wraps a broker to
// time the hub's publishes through it. [QueueLength] is a histogram of
// members' queue lengths at enqueue, fed by hub.Options.OnEnqueue: it
// shows members falling behind before the slow-consumer policy acts.
//
// # Cardinality
//
// Every label value comes from a bounded set: route patterns, outcomes,
// HTTP statuses, close codes (codes outside 1000–4999 count as "other"),
// the names given to hubs and brokers, and the rooms listed in
// [HubOptions.Rooms]. Room names, paths, connection IDs and client
// addresses never become labels.
//
// # Traces
//
// Spans per connection, with OpenTelemetry, are in package
// github.com/nexio-go/nexio/wsmw/wsotel.
package wsmetrics
