package redisbroker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// historyNode is a node whose rooms keep their history in Redis: a
// member joins /ws/{room}?since=<epoch>:<offset> and receives
// "sync <epoch>:<offset> <recovered> <missed>", then every message as
// "<epoch>:<offset> <data>".
type historyNode struct {
	*httptest.Server
	hub    *hub.Hub
	broker *redisbroker.Broker
}

func newHistoryNode(t testing.TB, client redis.UniversalClient, prefix, name string) *historyNode {
	t.Helper()
	logger, _ := testLogger(t)
	n := &historyNode{broker: redisbroker.New(client, &redisbroker.Options{Prefix: prefix, Logger: logger, Timeout: time.Second})}
	n.hub = hub.New(&hub.Options{
		Broker:        n.broker,
		Node:          name,
		Logger:        logger,
		History:       hub.History{Size: 100000, TTL: time.Hour},
		QueueMessages: 100000,
		QueueBytes:    64 << 20,
		Stamp: func(room string, pos hub.Position, typ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte) {
			return typ, fmt.Appendf(nil, "%s:%d %s", pos.Epoch, pos.Offset, data)
		},
	})
	tracker := wsroute.NewTracker()
	mux := http.NewServeMux()
	mux.Handle("/ws/{room}", (&wsroute.Options{Tracker: tracker, Logger: logger}).Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		var since hub.Position
		if s := c.Query("since"); s != "" {
			epoch, off, _ := strings.Cut(s, ":")
			since.Epoch = epoch
			since.Offset, _ = strconv.ParseUint(off, 10, 64)
		}
		rec, err := n.hub.JoinFrom(c, c.Param("room"), since)
		if err != nil {
			return err
		}
		// The sync line is sent directly, not through the member's
		// queue where the replay is: it may arrive before the replay
		// ends. The client tells it by its prefix.
		if err := c.SendText(ctx, fmt.Sprintf("sync %s:%d %v %d", rec.Position.Epoch, rec.Position.Offset, rec.Recovered, rec.Missed)); err != nil {
			return err
		}
		for _, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
		}
		return nil
	}))
	n.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.hub.Shutdown(ctx)
		tracker.Shutdown(ctx)
		n.Server.Close()
	})
	return n
}

// reader is a client of a historyNode that records what it receives.
type reader struct {
	c    *websocket.Conn
	mu   sync.Mutex
	msgs []string
	sync string
	done chan struct{}
}

func dialHistory(t testing.TB, n *historyNode, room, since string) *reader {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.URL, "http") + "/ws/" + room
	if since != "" {
		url += "?since=" + since
	}
	c, _, err := websocket.Dial(testutil.Ctx(t), url, nil)
	testutil.NoErr(t, err)
	c.SetReadLimit(-1)
	r := &reader{c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			r.mu.Lock()
			if s, ok := strings.CutPrefix(string(data), "sync "); ok {
				r.sync = s
			} else {
				r.msgs = append(r.msgs, string(data))
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-r.done
	})
	testutil.Eventually(t, func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.sync != "" }, "no sync line")
	return r
}

func (r *reader) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// Two nodes whose rooms keep their history in Redis (with an
// append-only file); Redis is killed and restarted while node A
// publishes. Members on both nodes receive every message that was
// stored, once and in order, each stamped with its position; Missed
// stays 0; and a member that reconnects with since= recovers exactly the
// messages after it.
func TestHubHistoryAcrossRedisRestart(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	client := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.addr()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := newHistoryNode(t, client(), "hh", "A")
	b := newHistoryNode(t, client(), "hh", "B")
	onA := dialHistory(t, a, "room", "")
	onB := dialHistory(t, b, "room", "")
	testutil.Eventually(t, func() bool { return a.broker.Stats().Subscribed && b.broker.Stats().Subscribed }, "not subscribed")
	subscribed(t, client(), "hh", "room", 2)

	var (
		mu     sync.Mutex
		stored []hub.Position
		stop   = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			pos, err := a.hub.Publish(context.Background(), "room", wsroute.MessageText, []byte(strconv.Itoa(i)))
			if err == nil {
				mu.Lock()
				stored = append(stored, pos)
				mu.Unlock()
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(stored) }
	testutil.Eventually(t, func() bool { return count() >= 30 }, "no publishing")
	srv.kill()
	time.Sleep(300 * time.Millisecond)
	srv.start()
	before := count()
	testutil.Eventually(t, func() bool { return count() >= before+30 }, "publishing did not resume")
	close(stop)
	<-done
	last := stored[len(stored)-1]
	want := make([]string, last.Offset)
	for i := range want {
		want[i] = fmt.Sprintf("%s:%d ", last.Epoch, i+1)
	}
	for _, m := range []struct {
		name string
		r    *reader
	}{{"member of A", onA}, {"member of B", onB}} {
		testutil.Eventually(t, func() bool { return len(m.r.got()) >= len(want) }, "%s got %d of %d", m.name, len(m.r.got()), len(want))
		got := m.r.got()
		testutil.Equal(t, len(got), len(want))
		for i := range want {
			testutil.Check(t, strings.HasPrefix(got[i], want[i]), "%s: message %d is %q, want %q…", m.name, i, got[i], want[i])
		}
	}
	testutil.Equal(t, a.broker.Stats().Missed, uint64(0))
	testutil.Equal(t, b.broker.Stats().Missed, uint64(0))

	// A member that saw up to offset k comes back on the other node.
	k := last.Offset / 2
	again := dialHistory(t, b, "room", fmt.Sprintf("%s:%d", last.Epoch, k))
	testutil.Equal(t, again.sync, fmt.Sprintf("%s:%d true %d", last.Epoch, last.Offset, last.Offset-k))
	// The replay goes through the member's queue; the sync line was sent
	// directly, so it may arrive first.
	testutil.Eventually(t, func() bool { return uint64(len(again.got())) >= last.Offset-k }, "replayed %d of %d", len(again.got()), last.Offset-k)
	got := again.got()
	testutil.Equal(t, uint64(len(got)), last.Offset-k)
	testutil.Check(t, strings.HasPrefix(got[0], fmt.Sprintf("%s:%d ", last.Epoch, k+1)), "first replayed: %q", got[0])
}
