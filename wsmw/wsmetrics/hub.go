package wsmetrics

import (
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexio-go/nexio/hub"
)

// HubOptions configures a hub collector. The zero value and nil mean the
// defaults.
type HubOptions struct {
	// Rooms lists the rooms whose local member count is exported, one
	// time series per room (nexio_hub_room_members). Room names are
	// chosen by users, so no room is exported unless listed here: keep
	// the list short and fixed. Defaults to none.
	Rooms []string
}

// hubHelp describes the fields of hub.Stats. A field added to hub.Stats
// later is exported too, with its field name as its help.
var hubHelp = map[string]string{
	"members":          "Connections of this node in at least one room.",
	"rooms":            "Rooms with members on this node.",
	"broadcasts":       "Broadcast calls served locally.",
	"messages_out":     "Messages handed to members' sockets.",
	"bytes_out":        "Payload bytes of the messages handed to members' sockets.",
	"dropped":          "Messages dropped by the DropNewest or DropOldest slow-consumer policy.",
	"slow_disconnects": "Members closed with 1008 by the Disconnect slow-consumer policy.",
	"write_errors":     "Member writes that failed (the peer left or stalled).",
	"received":         "Messages delivered from other nodes.",
	"broker_errors":    "Failed broker publishes and presence updates.",
}

// HubCollector exports h's counters (hub.Stats) as nexio_hub_* metrics,
// each labelled hub=name to tell several hubs of one process apart. The
// counts are read when scraped: the hub pays nothing between scrapes.
func HubCollector(name string, h *hub.Hub, opts *HubOptions) prometheus.Collector {
	var o HubOptions
	if opts != nil {
		o = *opts
	}
	sc := newStatsCollector("nexio_hub_", "hub", name, hubHelp, func() any { return h.Stats() })
	c := &hubCollector{stats: sc, h: h, rooms: slices.Clone(o.Rooms)}
	if len(c.rooms) > 0 {
		c.roomDesc = prometheus.NewDesc("nexio_hub_room_members", "Local members of each room listed in HubOptions.Rooms.",
			[]string{"room"}, prometheus.Labels{"hub": name})
	}
	return c
}

type hubCollector struct {
	stats    *statsCollector
	h        *hub.Hub
	rooms    []string
	roomDesc *prometheus.Desc
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	c.stats.Describe(ch)
	if c.roomDesc != nil {
		ch <- c.roomDesc
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	c.stats.Collect(ch)
	for _, room := range c.rooms {
		ch <- prometheus.MustNewConstMetric(c.roomDesc, prometheus.GaugeValue, float64(c.h.Count(room)), room)
	}
}

// DefaultQueueBuckets cover a member's queue from empty to beyond the
// hub's default bound of 256 messages: 0 and the powers of two to 1024.
var DefaultQueueBuckets = []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// QueueLength is a histogram of members' queue lengths at enqueue
// (nexio_hub_queue_length): how many messages wait for a member's socket
// each time one more is queued for it. Its upper buckets fill while
// members read slower than their rooms talk, before the slow-consumer
// policy acts. Plug OnEnqueue into hub.Options:
//
//	q := wsmetrics.NewQueueLength("rooms", nil)
//	h := hub.New(&hub.Options{OnEnqueue: q.OnEnqueue()})
//	reg.MustRegister(q, wsmetrics.HubCollector("rooms", h, nil))
type QueueLength struct {
	desc *prometheus.Desc
	h    prometheus.Histogram // custom buckets; nil with the default ones

	// With DefaultQueueBuckets, an observation is one atomic add to its
	// bucket (found with bits.Len, the buckets being powers of two) and
	// one to the sum: it runs under the hub's lock once per member per
	// message, where a general histogram's search costs several times
	// more (BenchmarkQueueLength).
	buckets [len(defaultQueueBounds) + 1]atomic.Uint64 // the last is +Inf
	sum     atomic.Uint64
}

var defaultQueueBounds = [...]float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// NewQueueLength returns a QueueLength for the hub called name, with
// buckets (nil means DefaultQueueBuckets).
func NewQueueLength(name string, buckets []float64) *QueueLength {
	const help = "Messages queued for a member, observed each time one is queued for it."
	labels := prometheus.Labels{"hub": name}
	q := &QueueLength{desc: prometheus.NewDesc("nexio_hub_queue_length", help, nil, labels)}
	if buckets != nil {
		q.h = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nexio_hub_queue_length", Help: help, ConstLabels: labels, Buckets: buckets,
		})
	}
	return q
}

// OnEnqueue returns the function to set as hub.Options.OnEnqueue. With
// the default buckets it costs two atomic adds and no allocation per
// member per message.
func (q *QueueLength) OnEnqueue() func(queued int) {
	if q.h != nil {
		return func(queued int) { q.h.Observe(float64(queued)) }
	}
	return q.observe
}

func (q *QueueLength) observe(queued int) {
	i := 0
	if queued > 0 {
		i = min(bits.Len(uint(queued-1))+1, len(defaultQueueBounds))
	} else {
		queued = 0
	}
	q.buckets[i].Add(1)
	q.sum.Add(uint64(queued))
}

// Describe implements prometheus.Collector.
func (q *QueueLength) Describe(ch chan<- *prometheus.Desc) {
	if q.h != nil {
		q.h.Describe(ch)
		return
	}
	ch <- q.desc
}

// Collect implements prometheus.Collector.
func (q *QueueLength) Collect(ch chan<- prometheus.Metric) {
	if q.h != nil {
		q.h.Collect(ch)
		return
	}
	cumulative := make(map[float64]uint64, len(defaultQueueBounds))
	var n uint64
	for i, le := range defaultQueueBounds {
		n += q.buckets[i].Load()
		cumulative[le] = n
	}
	n += q.buckets[len(defaultQueueBounds)].Load()
	ch <- prometheus.MustNewConstHistogram(q.desc, n, float64(q.sum.Load()), cumulative)
}
