package wsmetrics

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// Options configures Connections. The zero value and nil mean the
// defaults.
type Options struct {
	// DurationBuckets are the upper bounds, in seconds, of the connection
	// duration histogram. Defaults to DefaultDurationBuckets.
	DurationBuckets []float64

	// Route names the route a connection came in on, for the route label.
	// It must return one of a bounded set of values: never the raw path,
	// which a client chooses. Defaults to the pattern the request matched
	// (http.Request.Pattern, which http.ServeMux and chi fill), or
	// "unmatched" when there is none.
	Route func(c *wsroute.Conn) string
}

// DefaultDurationBuckets span a WebSocket's life, from a refused-at-once
// client to a day-long session: 10 ms to 24 h.
var DefaultDurationBuckets = []float64{0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}

// Metrics records the connections of the routes its Middleware wraps. It
// is a prometheus.Collector: register it once, and use its Middleware on
// as many routes as needed.
type Metrics struct {
	route      func(c *wsroute.Conn) string
	handshakes *prometheus.CounterVec
	closes     *prometheus.CounterVec
	duration   *prometheus.HistogramVec

	openDesc, msgsInDesc, msgsOutDesc, bytesInDesc, bytesOutDesc *prometheus.Desc

	mu     sync.RWMutex
	routes map[string]*routeConns
}

// routeConns are a route's open connections, and the traffic of those
// that ended. Traffic counters are read from each open connection's
// Conn.Stats when scraped: the middleware costs nothing per message.
type routeConns struct {
	mu     sync.Mutex
	open   map[*wsroute.Conn]struct{}
	closed wsroute.ConnStats
}

// Connections returns Metrics with opts (nil means the defaults).
func Connections(opts *Options) *Metrics {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.DurationBuckets == nil {
		o.DurationBuckets = DefaultDurationBuckets
	}
	if o.Route == nil {
		o.Route = routePattern
	}
	perRoute := []string{"route"}
	return &Metrics{
		route: o.Route,
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexio_ws_handshakes_total",
			Help: "WebSocket handshakes by outcome: accepted; refused over HTTP (status); closed before accept (code).",
		}, []string{"route", "outcome", "status", "code"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexio_ws_closes_total",
			Help: "Accepted connections ended, by close code and by the side that closed first (server or client).",
		}, []string{"route", "code", "side"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexio_ws_connection_duration_seconds",
			Help:    "How long accepted connections lasted, from the handshake request to the end.",
			Buckets: o.DurationBuckets,
		}, perRoute),
		openDesc:     prometheus.NewDesc("nexio_ws_connections_open", "Accepted connections not yet ended.", perRoute, nil),
		msgsInDesc:   prometheus.NewDesc("nexio_ws_messages_in_total", "Data messages received.", perRoute, nil),
		msgsOutDesc:  prometheus.NewDesc("nexio_ws_messages_out_total", "Data messages sent.", perRoute, nil),
		bytesInDesc:  prometheus.NewDesc("nexio_ws_bytes_in_total", "Payload bytes of the data messages received.", perRoute, nil),
		bytesOutDesc: prometheus.NewDesc("nexio_ws_bytes_out_total", "Payload bytes of the data messages sent.", perRoute, nil),
		routes:       make(map[string]*routeConns),
	}
}

func routePattern(c *wsroute.Conn) string {
	if p := c.Request().Pattern; p != "" {
		return p
	}
	return "unmatched"
}

// Middleware records each connection through the chain it is part of.
// Put it first, as wsmw.Logger, so that it sees the refusals of the
// middleware after it.
func (m *Metrics) Middleware() wsmw.Middleware {
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			start := time.Now()
			route := m.route(c)
			rc := m.routeConns(route)
			c.OnAccept(func() {
				rc.mu.Lock()
				rc.open[c] = struct{}{}
				rc.mu.Unlock()
				m.handshakes.WithLabelValues(route, "accepted", "101", "").Inc()
			})
			c.OnEnd(func(e wsroute.ConnEnd) { m.end(route, rc, c, e, time.Since(start)) })
			return next(ctx, c)
		}
	}
}

func (m *Metrics) end(route string, rc *routeConns, c *wsroute.Conn, e wsroute.ConnEnd, d time.Duration) {
	switch {
	case e.Accepted:
		rc.mu.Lock()
		delete(rc.open, c)
		s := c.Stats()
		rc.closed.MessagesIn += s.MessagesIn
		rc.closed.MessagesOut += s.MessagesOut
		rc.closed.BytesIn += s.BytesIn
		rc.closed.BytesOut += s.BytesOut
		rc.mu.Unlock()
		side := "server"
		if e.PeerClosed {
			side = "client"
		}
		m.closes.WithLabelValues(route, codeLabel(e.Code), side).Inc()
		m.duration.WithLabelValues(route).Observe(d.Seconds())
	case e.Code != 0:
		m.handshakes.WithLabelValues(route, "closed_before_accept", strconv.Itoa(e.Status), codeLabel(e.Code)).Inc()
	default:
		m.handshakes.WithLabelValues(route, "refused", strconv.Itoa(e.Status), "").Inc()
	}
}

// codeLabel keeps the code label bounded whatever a peer sends: codes
// outside 1000–4999 cannot be sent in a close frame.
func codeLabel(code wsroute.StatusCode) string {
	if code < 1000 || code > 4999 {
		return "other"
	}
	return strconv.Itoa(int(code))
}

func (m *Metrics) routeConns(route string) *routeConns {
	m.mu.RLock()
	rc := m.routes[route]
	m.mu.RUnlock()
	if rc != nil {
		return rc
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rc = m.routes[route]; rc == nil {
		rc = &routeConns{open: make(map[*wsroute.Conn]struct{})}
		m.routes[route] = rc
	}
	return rc
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.handshakes.Describe(ch)
	m.closes.Describe(ch)
	m.duration.Describe(ch)
	for _, d := range []*prometheus.Desc{m.openDesc, m.msgsInDesc, m.msgsOutDesc, m.bytesInDesc, m.bytesOutDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The traffic counters sum the
// Conn.Stats of each open connection: a scrape costs a few atomic loads
// per open connection, and a message costs nothing.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.handshakes.Collect(ch)
	m.closes.Collect(ch)
	m.duration.Collect(ch)
	m.mu.RLock()
	routes := make(map[string]*routeConns, len(m.routes))
	for r, rc := range m.routes {
		routes[r] = rc
	}
	m.mu.RUnlock()
	var conns []*wsroute.Conn
	for route, rc := range routes {
		// The ended connections' totals and the open set are taken
		// together, then the open ones are read without the lock, so
		// that a scrape holds up handshakes only for a copy. The sum
		// still never goes down: a connection that ends meanwhile is
		// read live here and in the totals only from the next scrape,
		// and a connection's counts only grow.
		rc.mu.Lock()
		sum := rc.closed
		conns = conns[:0]
		for c := range rc.open {
			conns = append(conns, c)
		}
		rc.mu.Unlock()
		for _, c := range conns {
			s := c.Stats()
			sum.MessagesIn += s.MessagesIn
			sum.MessagesOut += s.MessagesOut
			sum.BytesIn += s.BytesIn
			sum.BytesOut += s.BytesOut
		}
		ch <- prometheus.MustNewConstMetric(m.openDesc, prometheus.GaugeValue, float64(len(conns)), route)
		ch <- prometheus.MustNewConstMetric(m.msgsInDesc, prometheus.CounterValue, float64(sum.MessagesIn), route)
		ch <- prometheus.MustNewConstMetric(m.msgsOutDesc, prometheus.CounterValue, float64(sum.MessagesOut), route)
		ch <- prometheus.MustNewConstMetric(m.bytesInDesc, prometheus.CounterValue, float64(sum.BytesIn), route)
		ch <- prometheus.MustNewConstMetric(m.bytesOutDesc, prometheus.CounterValue, float64(sum.BytesOut), route)
	}
}
