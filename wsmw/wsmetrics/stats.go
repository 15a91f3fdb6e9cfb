package wsmetrics

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
)

// brokerHelp describes the broker counters nexio's brokers keep (the
// fields of redisbroker.Stats). Fields without an entry are exported
// with their field name as their help.
var brokerHelp = map[string]string{
	"published":       "Messages published to the broker's backend.",
	"publish_errors":  "Publishes that failed: the backend down or slow.",
	"no_such_conn":    "Messages to a connection that no node holds.",
	"received":        "Messages from other nodes handed to the hub.",
	"duplicates":      "Messages from other nodes received again; dropped.",
	"missed":          "Messages from other nodes that never arrived here (sequence gaps the history could not fill).",
	"appended":        "Messages stored in a room's history and published.",
	"filled":          "Messages of rooms with history that pub/sub lost and this node read from the history instead.",
	"expired":         "Members of other nodes given a leave because their node stopped refreshing its presence.",
	"malformed":       "Payloads on this node's channels that did not decode; dropped.",
	"reconnects":      "Times the subscription came back after a loss.",
	"outages":         "Times the backend became unreachable.",
	"presence_errors": "Presence writes that failed (retried until the backend takes them).",
	"subscribed":      "1 while the subscription is up and confirmed, else 0.",
	"rooms":           "Rooms this node is subscribed to.",
}

// BrokerCollector exports a broker's counters as nexio_broker_* metrics,
// each labelled broker=name. stats returns the broker's Stats struct, as
// redisbroker's Broker.Stats does; it is called once here, to learn the
// fields, and once per scrape:
//
//	reg.MustRegister(wsmetrics.BrokerCollector("redis", b.Stats))
//
// Each field of S becomes one metric named after it in snake case
// (PublishErrors: nexio_broker_publish_errors_total): unsigned integers
// are counters (suffix _total), signed integers and floats gauges,
// booleans gauges of 0 or 1, time.Duration gauges in seconds (suffix
// _seconds); nested structs add their field name as a prefix, and other
// fields are skipped. A broker that adds a counter to its Stats gets its
// metric without a change here. BrokerCollector panics if S is not a
// struct.
//
// Going through Stats keeps the brokers free of Prometheus, and this
// package free of the brokers' clients (go-redis, NATS).
func BrokerCollector[S any](name string, stats func() S) prometheus.Collector {
	return newStatsCollector("nexio_broker_", "broker", name, brokerHelp, func() any { return stats() })
}

// statsCollector exports the numeric fields of a Stats struct.
type statsCollector struct {
	read   func() any
	fields []statsField
}

type statsField struct {
	index []int // reflect.Value.FieldByIndex
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(reflect.Value) float64
}

func newStatsCollector(prefix, label, name string, help map[string]string, read func() any) *statsCollector {
	v := reflect.ValueOf(read())
	if v.Kind() != reflect.Struct {
		panic(fmt.Sprintf("wsmetrics: stats must be a struct, got %s", v.Type()))
	}
	c := &statsCollector{read: read}
	var walk func(t reflect.Type, index []int, namePrefix string)
	walk = func(t reflect.Type, index []int, namePrefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			key := namePrefix + fieldName(f)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx, key+"_")
				continue
			}
			sf, ok := numericField(f.Type)
			if !ok {
				continue
			}
			metric := prefix + key + sf.suffix
			h := help[key]
			if h == "" {
				h = t.Name() + "." + f.Name
			}
			sf.index = idx
			sf.desc = prometheus.NewDesc(metric, h, nil, prometheus.Labels{label: name})
			c.fields = append(c.fields, sf.statsField)
		}
	}
	walk(v.Type(), nil, "")
	return c
}

type numeric struct {
	statsField
	suffix string
}

var durationType = reflect.TypeOf(time.Duration(0))

func numericField(t reflect.Type) (numeric, bool) {
	if t == durationType {
		return numeric{statsField{kind: prometheus.GaugeValue,
			value: func(v reflect.Value) float64 { return time.Duration(v.Int()).Seconds() }}, "_seconds"}, true
	}
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return numeric{statsField{kind: prometheus.CounterValue,
			value: func(v reflect.Value) float64 { return float64(v.Uint()) }}, "_total"}, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return numeric{statsField{kind: prometheus.GaugeValue,
			value: func(v reflect.Value) float64 { return float64(v.Int()) }}, ""}, true
	case reflect.Float32, reflect.Float64:
		return numeric{statsField{kind: prometheus.GaugeValue,
			value: func(v reflect.Value) float64 { return v.Float() }}, ""}, true
	case reflect.Bool:
		return numeric{statsField{kind: prometheus.GaugeValue,
			value: func(v reflect.Value) float64 {
				if v.Bool() {
					return 1
				}
				return 0
			}}, ""}, true
	}
	return numeric{}, false
}

// fieldName is the field's JSON name when it has one, else its Go name
// in snake case.
func fieldName(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
		return tag
	}
	var b strings.Builder
	rs := []rune(f.Name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// A word starts at an upper-case letter after a lower-case
			// one, or before a lower-case one in a run of capitals
			// (HTTPErrors: http_errors).
			if i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.fields {
		ch <- f.desc
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	v := reflect.ValueOf(c.read())
	for _, f := range c.fields {
		ch <- prometheus.MustNewConstMetric(f.desc, f.kind, f.value(v.FieldByIndex(f.index)))
	}
}
