package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// scrape fetches GET /metrics and parses it as Prometheus does.
func (ta *testApp) scrape(t testing.TB) map[string]*metricFamily {
	t.Helper()
	resp, err := ta.srv.HTTP.Client().Get(ta.srv.HTTP.URL + "/metrics")
	testutil.NoErr(t, err)
	defer resp.Body.Close()
	testutil.Equal(t, resp.StatusCode, http.StatusOK)
	testutil.Check(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"),
		"Content-Type %q is not Prometheus' text format", resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	testutil.NoErr(t, err)
	return mfs
}

type metricFamily = dto.MetricFamily

// value returns the value of the series of name whose labels include
// want, or -1.
func value(mfs map[string]*metricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
series:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetrics: the demo's /metrics counts its WebSocket routes by
// pattern, its hubs and their queues, as a person using the demo makes
// them move.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	echo := ta.dial(t, "/ws/echo", nil)
	testutil.NoErr(t, echo.SendText("hello"))
	testutil.NoErr(t, echo.ExpectText("Echo: hello"))
	a, b := ta.dial(t, "/ws/chat", nil), ta.dial(t, "/ws/chat", nil)
	testutil.Eventually(t, func() bool { return ta.local.Count("chat") == 2 }, "the chat clients did not join")
	testutil.NoErr(t, a.SendText("hi"))
	testutil.NoErr(t, b.ExpectText("hi"))
	errc := ta.dial(t, "/ws/error", nil)
	testutil.NoErr(t, errc.ExpectClose(wsroute.StatusInternalError))
	// Two users, one route pattern.
	for _, id := range []string{"1", "2"} {
		c := ta.dial(t, "/ws/user/"+id, nil)
		testutil.NoErr(t, c.ExpectText("Welcome, User "+id+"!"))
		testutil.NoErr(t, c.ExpectClose(wsroute.StatusNormalClosure))
	}

	var mfs map[string]*metricFamily
	testutil.Eventually(t, func() bool {
		mfs = ta.scrape(t)
		// A connection is counted closed once its handler has returned,
		// which may be after the client saw the close frame.
		return value(mfs, "nexio_ws_closes_total", map[string]string{"route": "/ws/user/{user_id}", "code": "1000", "side": "server"}) == 2 &&
			value(mfs, "nexio_ws_closes_total", map[string]string{"route": "/ws/error", "code": "1011", "side": "server"}) == 1
	}, "the /ws/user/{user_id} and /ws/error closes were not counted under their patterns")
	testutil.Equal(t, value(mfs, "nexio_ws_connections_open", map[string]string{"route": "/ws/echo"}), 1)
	testutil.Equal(t, value(mfs, "nexio_ws_connections_open", map[string]string{"route": "/ws/chat"}), 2)
	testutil.Equal(t, value(mfs, "nexio_ws_messages_in_total", map[string]string{"route": "/ws/echo"}), 1)
	testutil.Equal(t, value(mfs, "nexio_hub_room_members", map[string]string{"hub": "local", "room": "chat"}), 2)
	testutil.Equal(t, value(mfs, "nexio_hub_broadcasts_total", map[string]string{"hub": "local"}), 1)
	testutil.Equal(t, value(mfs, "nexio_hub_queue_length", map[string]string{"hub": "local"}), 1)
	testutil.Equal(t, value(mfs, "nexio_hub_members", map[string]string{"hub": "rooms"}), 0)
	testutil.Check(t, mfs["go_goroutines"] != nil, "the Go runtime's metrics are missing")
	for name := range mfs {
		testutil.Check(t, !strings.HasPrefix(name, "nexio_broker_"), "%s is exported without -redis", name)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				testutil.Check(t, !strings.Contains(lp.GetValue(), "/ws/user/1"), "a raw path is a label value: %v", lp)
			}
		}
	}
}

// TestDashboard: GET /dashboard is the page, its script is served, and
// both keep to the page's own origin.
func TestDashboard(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	for path, want := range map[string]string{
		"/dashboard":            "<canvas id=\"chart-connections\"",
		"/static/dashboard.js":  "fetch(\"/metrics\"",
		"/static/dashboard.css": ".panel",
	} {
		resp, err := ta.srv.HTTP.Client().Get(ta.srv.HTTP.URL + path)
		testutil.NoErr(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		testutil.NoErr(t, err)
		testutil.Equal(t, resp.StatusCode, http.StatusOK)
		testutil.Check(t, strings.Contains(string(body), want), "%s does not contain %q", path, want)
		testutil.Check(t, strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'"),
			"%s has no same-origin Content-Security-Policy", path)
		testutil.Check(t, !strings.Contains(string(body), "http://") && !strings.Contains(string(body), "https://"),
			"%s refers to another origin", path)
	}
}

// TestMetricsWithRedis: with -redis, /metrics adds the broker's counters
// and the rooms hub's publish latency.
func TestMetricsWithRedis(t *testing.T) {
	t.Parallel()
	ta := start(t, config{RedisURL: redisURL(t)})
	room := randomName("m-")
	a := ta.dial(t, "/ws/rooms/"+room+"?name=ann", nil)
	testutil.Eventually(t, func() bool { return ta.rooms.Count(room) == 1 }, "ann did not join")
	testutil.NoErr(t, a.SendText("hello"))
	redis := map[string]string{"broker": "redis"}
	var mfs map[string]*metricFamily
	testutil.Eventually(t, func() bool {
		mfs = ta.scrape(t)
		// The latency and the broker's own count are recorded apart: a
		// scrape may see one before the other.
		return value(mfs, "nexio_broker_subscribed", redis) == 1 &&
			value(mfs, "nexio_broker_publish_seconds", map[string]string{"op": "publish", "result": "ok"}) >= 1 &&
			value(mfs, "nexio_broker_published_total", redis) >= 1
	}, "the broker is not subscribed, or the publish was not timed or counted")
}
