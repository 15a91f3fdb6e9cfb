package wsmetrics_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
	"github.com/nexio-go/nexio/wsroute"
)

// roomHandler joins /ws/{room} and broadcasts each text message to the
// room's other members.
func roomHandler(h *hub.Hub) http.Handler {
	return wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := h.Join(c, c.Param("room")); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if err := h.BroadcastText(ctx, c.Param("room"), msg, hub.Except(c)); err != nil {
				return err
			}
		}
	})
}

// TestHubCollector: members of two rooms, one of them listed in
// HubOptions.Rooms, and a broadcast; the hub's counters, the listed
// room's members and the queue histogram are scraped.
func TestHubCollector(t *testing.T) {
	t.Parallel()
	q := wsmetrics.NewQueueLength("rooms", nil)
	h := hub.New(&hub.Options{OnEnqueue: q.OnEnqueue()})
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	reg := registry(t, q, wsmetrics.HubCollector("rooms", h, &wsmetrics.HubOptions{Rooms: []string{"lobby"}}))
	srv := mux(t, map[string]http.Handler{"/ws/{room}": roomHandler(h)})
	ctx := testutil.Ctx(t)

	a, b := dial(t, srv, "/ws/lobby"), dial(t, srv, "/ws/lobby")
	dial(t, srv, "/ws/secret")
	hubLabel := map[string]string{"hub": "rooms"}
	testutil.Eventually(t, func() bool { return sample(t, reg, "nexio_hub_members", hubLabel) == 3 }, "3 members not seen")
	testutil.Equal(t, sample(t, reg, "nexio_hub_rooms", hubLabel), 2)
	testutil.Equal(t, sample(t, reg, "nexio_hub_room_members", map[string]string{"room": "lobby"}), 2)
	// Rooms not listed never become a label value.
	testutil.Equal(t, sample(t, reg, "nexio_hub_room_members", map[string]string{"room": "secret"}), -1)

	testutil.NoErr(t, a.Write(ctx, websocket.MessageText, []byte("hi")))
	_, got, err := b.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "hi")
	testutil.Equal(t, sample(t, reg, "nexio_hub_broadcasts_total", hubLabel), 1)
	// Counted once the write returns, which may be after b read it.
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_hub_messages_out_total", hubLabel) == 1 &&
			sample(t, reg, "nexio_hub_bytes_out_total", hubLabel) == 2
	}, "hub messages out not counted")
	// One member queued one message: one observation, of length 1.
	testutil.Equal(t, sample(t, reg, "nexio_hub_queue_length", hubLabel), 1)
	problems, err := promtest.GatherAndLint(reg)
	testutil.NoErr(t, err)
	testutil.Check(t, len(problems) == 0, "lint: %v", problems)
}

// TestHubCollectorExportsEveryStat: every field of hub.Stats becomes a
// metric, so counters added to the hub later (recovery outcomes) are
// exported without a change here.
func TestHubCollectorExportsEveryStat(t *testing.T) {
	t.Parallel()
	h := hub.New(nil)
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	want := reflect.TypeOf(hub.Stats{}).NumField()
	testutil.Equal(t, promtest.CollectAndCount(wsmetrics.HubCollector("h", h, nil)), want)
}

// TestSlowConsumerMetrics: a member that does not read fills its queue;
// the queue histogram's top buckets and nexio_hub_slow_disconnects_total
// show it.
func TestSlowConsumerMetrics(t *testing.T) {
	t.Parallel()
	q := wsmetrics.NewQueueLength("rooms", nil)
	h := hub.New(&hub.Options{OnEnqueue: q.OnEnqueue(), QueueMessages: 4, Logger: quiet})
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	reg := registry(t, q, wsmetrics.HubCollector("rooms", h, nil))
	srv := mux(t, map[string]http.Handler{"/ws/{room}": roomHandler(h)})
	ctx := testutil.Ctx(t)
	talker := dial(t, srv, "/ws/lobby")
	dial(t, srv, "/ws/lobby") // never reads: its socket buffers fill, then its queue
	hubLabel := map[string]string{"hub": "rooms"}
	testutil.Eventually(t, func() bool { return sample(t, reg, "nexio_hub_members", hubLabel) == 2 }, "members not seen")
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'x'
	}
	for sample(t, reg, "nexio_hub_slow_disconnects_total", hubLabel) < 1 {
		if err := talker.Write(ctx, websocket.MessageText, big); err != nil {
			t.Fatalf("writing: %v", err)
		}
	}
	mfs, err := reg.Gather()
	testutil.NoErr(t, err)
	var full uint64
	for _, mf := range mfs {
		if mf.GetName() == "nexio_hub_queue_length" {
			for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				if b.GetUpperBound() == 2 {
					full = mf.GetMetric()[0].GetHistogram().GetSampleCount() - b.GetCumulativeCount()
				}
			}
		}
	}
	testutil.Check(t, full > 0, "no enqueue saw a queue longer than 2 before the slow member was disconnected")
}

var quiet = slog.New(slog.DiscardHandler)

// TestBrokerCollector scrapes a real redisbroker between two hubs: one
// publishes, the other receives, and both are up.
func TestBrokerCollector(t *testing.T) {
	t.Parallel()
	url := os.Getenv("NEXIO_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	ropts, err := redis.ParseURL(url)
	testutil.NoErr(t, err)
	client := redis.NewClient(ropts)
	t.Cleanup(func() { client.Close() })
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis at %s does not answer: %v (NEXIO_REQUIRE_REDIS=1)", url, err)
		}
		t.Skipf("Redis at %s does not answer: %v", url, err)
	}
	prefix := "wsmetrics-test-" + time.Now().Format("150405.000000000")
	newNode := func() (*hub.Hub, *redisbroker.Broker) {
		b := redisbroker.New(client, &redisbroker.Options{Prefix: prefix})
		h := hub.New(&hub.Options{Broker: b})
		t.Cleanup(func() { h.Shutdown(context.Background()) })
		return h, b
	}
	h1, b1 := newNode()
	h2, b2 := newNode()
	reg := registry(t, wsmetrics.BrokerCollector("one", b1.Stats), wsmetrics.BrokerCollector("two", b2.Stats))
	srv1 := mux(t, map[string]http.Handler{"/ws/{room}": roomHandler(h1)})
	srv2 := mux(t, map[string]http.Handler{"/ws/{room}": roomHandler(h2)})
	ctx := testutil.Ctx(t)
	a, b := dial(t, srv1, "/ws/lobby"), dial(t, srv2, "/ws/lobby")
	one, two := map[string]string{"broker": "one"}, map[string]string{"broker": "two"}
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_broker_subscribed", one) == 1 && sample(t, reg, "nexio_broker_subscribed", two) == 1 &&
			sample(t, reg, "nexio_broker_rooms", two) == 1
	}, "the brokers are not both subscribed to the room")
	// The gauges say each broker wants the room; that Redis has both
	// subscriptions is another matter (a publish before it reaches no
	// one): ask Redis.
	channel := "{" + prefix + "}:r:lobby"
	testutil.Eventually(t, func() bool {
		n, err := client.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] == 2
	}, "Redis does not list both nodes as subscribers of %s", channel)
	testutil.NoErr(t, a.Write(ctx, websocket.MessageText, []byte("across")))
	_, got, err := b.Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(got), "across")
	// Published is counted once Redis answered, which may be after the
	// message reached the other node.
	testutil.Eventually(t, func() bool {
		return sample(t, reg, "nexio_broker_published_total", one) == 1 &&
			sample(t, reg, "nexio_broker_received_total", two) == 1
	}, "published %v, received %v, want 1 and 1",
		sample(t, reg, "nexio_broker_published_total", one), sample(t, reg, "nexio_broker_received_total", two))
	testutil.Equal(t, sample(t, reg, "nexio_broker_outages_total", one), 0)
	testutil.Equal(t, sample(t, reg, "nexio_broker_missed_total", two), 0)
	problems, err := promtest.GatherAndLint(reg)
	testutil.NoErr(t, err)
	testutil.Check(t, len(problems) == 0, "lint: %v", problems)
}

// TestBrokerCollectorFields: how a Stats struct's fields become metrics.
func TestBrokerCollectorFields(t *testing.T) {
	t.Parallel()
	type nested struct{ Recovered, NotRecovered uint64 }
	type stats struct {
		PublishErrors uint64
		HTTPFailures  uint32
		Latency       time.Duration
		Up            bool
		Rooms         int
		Ratio         float64
		Recovery      nested
		Name          string // skipped
		hidden        uint64 // skipped
	}
	s := stats{PublishErrors: 3, HTTPFailures: 1, Latency: 1500 * time.Millisecond, Up: true, Rooms: 7, Ratio: 0.5,
		Recovery: nested{Recovered: 2, NotRecovered: 1}, hidden: 9}
	_ = s.hidden
	reg := registry(t, wsmetrics.BrokerCollector("x", func() stats { return s }))
	testCases := []struct {
		name string
		want float64
	}{
		{"nexio_broker_publish_errors_total", 3},
		{"nexio_broker_http_failures_total", 1},
		{"nexio_broker_latency_seconds", 1.5},
		{"nexio_broker_up", 1},
		{"nexio_broker_rooms", 7},
		{"nexio_broker_ratio", 0.5},
		{"nexio_broker_recovery_recovered_total", 2},
		{"nexio_broker_recovery_not_recovered_total", 1},
	}
	for _, tc := range testCases {
		testutil.Check(t, sample(t, reg, tc.name, map[string]string{"broker": "x"}) == tc.want,
			"%s = %v, want %v", tc.name, sample(t, reg, tc.name, nil), tc.want)
	}
	mfs, err := reg.Gather()
	testutil.NoErr(t, err)
	testutil.Equal(t, len(mfs), len(testCases))
	defer func() { testutil.Check(t, recover() != nil, "a non-struct Stats did not panic") }()
	wsmetrics.BrokerCollector("bad", func() int { return 1 })
}

// TestQueueLengthBuckets: the default buckets' fast path places every
// length where Prometheus' own histogram does.
func TestQueueLengthBuckets(t *testing.T) {
	t.Parallel()
	fast := wsmetrics.NewQueueLength("h", nil)
	general := wsmetrics.NewQueueLength("h", wsmetrics.DefaultQueueBuckets)
	for _, q := range []int{-1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 1023, 1024, 1025, 1 << 20} {
		fast.OnEnqueue()(q)
		general.OnEnqueue()(max(q, 0))
	}
	var want strings.Builder
	testutil.NoErr(t, prometheusText(general, &want))
	testutil.NoErr(t, promtest.CollectAndCompare(fast, strings.NewReader(want.String())))
	testutil.Equal(t, promtest.CollectAndCount(fast), 1)
}

// TestBrokerHelpCoversRedis: every field of redisbroker.Stats has its
// own help text, not the field-name fallback.
func TestBrokerHelpCoversRedis(t *testing.T) {
	t.Parallel()
	c := wsmetrics.BrokerCollector("redis", func() redisbroker.Stats { return redisbroker.Stats{} })
	ch := make(chan *prometheus.Desc, 64)
	c.Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		n++
		testutil.Check(t, !strings.Contains(d.String(), `help: "Stats.`), "no help text: %v", d)
	}
	testutil.Equal(t, n, reflect.TypeOf(redisbroker.Stats{}).NumField())
}
