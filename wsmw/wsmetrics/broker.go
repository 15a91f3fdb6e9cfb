package wsmetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexio-go/nexio/hub"
)

// DefaultPublishBuckets span a broker call from a loopback round trip to
// a broker's timeout: 100 µs to 5 s.
var DefaultPublishBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// PublishLatency is a histogram of how long a hub's calls to publish
// through its broker take (nexio_broker_publish_seconds), labelled
// broker, op ("publish", or "append" for rooms with history) and result
// ("ok" or "error"). Brokers do not time their own calls; Wrap puts the
// timing between the hub and any broker:
//
//	pl := wsmetrics.NewPublishLatency("redis", nil)
//	h := hub.New(&hub.Options{Broker: pl.Wrap(b)})
//	reg.MustRegister(pl, wsmetrics.BrokerCollector("redis", b.Stats))
type PublishLatency struct {
	vec                                        *prometheus.HistogramVec
	publishOK, publishErr, appendOK, appendErr prometheus.Observer
}

// NewPublishLatency returns a PublishLatency for the broker called name,
// with buckets in seconds (nil means DefaultPublishBuckets).
func NewPublishLatency(name string, buckets []float64) *PublishLatency {
	if buckets == nil {
		buckets = DefaultPublishBuckets
	}
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "nexio_broker_publish_seconds",
		Help:        "How long the hub's publishes through its broker took (op: publish, or append for rooms with history).",
		ConstLabels: prometheus.Labels{"broker": name},
		Buckets:     buckets,
	}, []string{"op", "result"})
	return &PublishLatency{
		vec:        vec,
		publishOK:  vec.WithLabelValues("publish", "ok"),
		publishErr: vec.WithLabelValues("publish", "error"),
		appendOK:   vec.WithLabelValues("append", "ok"),
		appendErr:  vec.WithLabelValues("append", "error"),
	}
}

// Wrap returns b with its Publish (and, for a hub.HistoryBroker, its
// Append) timed; every other method is b's. The result implements
// hub.HistoryBroker exactly when b does, so a hub with history accepts
// it as it would b. Give the hub the wrapped broker, and read Stats from
// b itself.
func (p *PublishLatency) Wrap(b hub.Broker) hub.Broker {
	t := &timedBroker{Broker: b, p: p}
	if hb, ok := b.(hub.HistoryBroker); ok {
		return &timedHistoryBroker{timedBroker: t, hb: hb}
	}
	return t
}

// Describe implements prometheus.Collector.
func (p *PublishLatency) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (p *PublishLatency) Collect(ch chan<- prometheus.Metric) { p.vec.Collect(ch) }

type timedBroker struct {
	hub.Broker
	p *PublishLatency
}

func (t *timedBroker) Publish(ctx context.Context, e hub.Envelope) error {
	start := time.Now()
	err := t.Broker.Publish(ctx, e)
	observe(t.p.publishOK, t.p.publishErr, start, err)
	return err
}

type timedHistoryBroker struct {
	*timedBroker
	hb hub.HistoryBroker
}

func (t *timedHistoryBroker) Append(ctx context.Context, e hub.Envelope, h hub.History) (hub.Position, error) {
	start := time.Now()
	pos, err := t.hb.Append(ctx, e, h)
	observe(t.p.appendOK, t.p.appendErr, start, err)
	return pos, err
}

func (t *timedHistoryBroker) History(ctx context.Context, room string, since hub.Position, limit int) ([]hub.Entry, hub.Position, error) {
	return t.hb.History(ctx, room, since, limit)
}

func observe(ok, failed prometheus.Observer, start time.Time, err error) {
	d := time.Since(start).Seconds()
	if err != nil {
		failed.Observe(d)
		return
	}
	ok.Observe(d)
}

var _ hub.HistoryBroker = (*timedHistoryBroker)(nil)
