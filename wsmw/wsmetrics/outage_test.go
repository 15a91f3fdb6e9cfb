package wsmetrics_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
)

// privateRedis starts a redis-server without persistence on a free
// loopback port, for a test that stops it; it is killed at cleanup.
func privateRedis(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning")
	testutil.NoErr(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(stop)
	testutil.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "redis-server did not start on %s", addr)
	return addr, stop
}

// TestBrokerOutageMetrics: when Redis goes away under a hub, the broker
// collector shows the outage and the lost subscription, which the
// guide's alerts (nexio_broker_outages_total, nexio_broker_subscribed)
// fire on, and publishes fail (nexio_broker_publish_seconds, result
// "error").
func TestBrokerOutageMetrics(t *testing.T) {
	t.Parallel()
	addr, stop := privateRedis(t)
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	// A generous Timeout: on a loaded machine a slow answer before the
	// stop must not pass for an outage. After the stop, publishes fail at
	// once anyway (the dial is refused; then the lost subscription
	// refuses them).
	b := redisbroker.New(client, &redisbroker.Options{Timeout: 5 * time.Second, Logger: quiet})
	pl := wsmetrics.NewPublishLatency("redis", nil)
	h := hub.New(&hub.Options{Broker: pl.Wrap(b), Logger: quiet})
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	reg := registry(t, pl, wsmetrics.BrokerCollector("redis", b.Stats), wsmetrics.HubCollector("rooms", h, nil))
	redisLabel := map[string]string{"broker": "redis"}
	testutil.Eventually(t, func() bool { return sample(t, reg, "nexio_broker_subscribed", redisLabel) == 1 },
		"the broker never subscribed")
	testutil.Equal(t, sample(t, reg, "nexio_broker_outages_total", redisLabel), 0)

	stop()
	ctx := testutil.Ctx(t)
	testutil.Eventually(t, func() bool {
		// Publishing makes the broker try Redis now, not at its next
		// heartbeat.
		h.BroadcastText(ctx, "lobby", "into the void")
		return sample(t, reg, "nexio_broker_outages_total", redisLabel) == 1 &&
			sample(t, reg, "nexio_broker_subscribed", redisLabel) == 0 &&
			sample(t, reg, "nexio_broker_publish_seconds", map[string]string{"op": "publish", "result": "error"}) > 0
	}, "the outage is not shown: outages %v, subscribed %v",
		sample(t, reg, "nexio_broker_outages_total", redisLabel), sample(t, reg, "nexio_broker_subscribed", redisLabel))
}
