package wsmetrics_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsmw/wsmetrics"
)

// sharedRedis returns a client of the shared test Redis, skipping (or,
// with NEXIO_REQUIRE_REDIS=1, failing) when it does not answer, and a
// key prefix of this test's own.
func sharedRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv("NEXIO_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	ropts, err := redis.ParseURL(url)
	testutil.NoErr(t, err)
	client := redis.NewClient(ropts)
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis at %s does not answer: %v (NEXIO_REQUIRE_REDIS=1)", url, err)
		}
		t.Skipf("Redis at %s does not answer: %v", url, err)
	}
	return client, "wsmetrics-" + t.Name() + "-" + time.Now().Format("150405.000000000")
}

// TestPublishLatency: broadcasts from a hub whose broker is wrapped are
// timed, as publishes without history and as appends with it, and reach
// the other node as before.
func TestPublishLatency(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name    string
		history hub.History
		op      string
	}{
		{"without history", hub.History{}, "publish"},
		{"with history", hub.History{Size: 10}, "append"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, prefix := sharedRedis(t)
			pl := wsmetrics.NewPublishLatency("redis", nil)
			newHub := func(wrap bool) *hub.Hub {
				var b hub.Broker = redisbroker.New(client, &redisbroker.Options{Prefix: prefix, Logger: quiet})
				if wrap {
					b = pl.Wrap(b)
				}
				h := hub.New(&hub.Options{Broker: b, History: tc.history, Logger: quiet})
				t.Cleanup(func() { h.Shutdown(context.Background()) })
				return h
			}
			a, b := newHub(true), newHub(false)
			reg := registry(t, pl)
			srv := mux(t, map[string]http.Handler{"/ws/{room}": roomHandler(b)})
			member := dial(t, srv, "/ws/lobby")
			ctx := testutil.Ctx(t)
			got := make(chan string, 1000)
			go func() {
				for {
					_, msg, err := member.Read(ctx)
					if err != nil {
						return
					}
					got <- string(msg)
				}
			}()
			// Node b subscribes to the room through Redis: broadcast
			// until one arrives, then count.
			var sent float64
			testutil.Eventually(t, func() bool {
				testutil.NoErr(t, a.BroadcastText(ctx, "lobby", "first"))
				sent++
				return len(got) > 0
			}, "no broadcast from node a reached the member on node b")
			for range 3 {
				testutil.NoErr(t, a.BroadcastText(ctx, "lobby", "more"))
				sent++
			}
			want := map[string]string{"broker": "redis", "op": tc.op, "result": "ok"}
			testutil.Equal(t, sample(t, reg, "nexio_broker_publish_seconds", want), sent)
			for more := 0; more < 3; {
				select {
				case m := <-got:
					if m == "more" {
						more++
					}
				case <-ctx.Done():
					t.Fatalf("only %d of the 3 later broadcasts arrived", more)
				}
			}
			_, isHistory := pl.Wrap(redisbroker.New(client, nil)).(hub.HistoryBroker)
			testutil.Check(t, isHistory, "the wrapped redisbroker is not a hub.HistoryBroker")
		})
	}
}
