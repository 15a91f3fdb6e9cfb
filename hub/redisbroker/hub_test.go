package redisbroker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// node is one process of a multi-node deployment: a Hub on a
// redisbroker, behind an httptest server at /ws/{room}. A member sends
// text or binary messages; each is broadcast to its room except itself.
type node struct {
	*httptest.Server
	name    string
	hub     *hub.Hub
	broker  *redisbroker.Broker
	tracker *wsroute.Tracker
	logs    *logBuffer
}

func newNode(t testing.TB, client redis.UniversalClient, prefix, name string, bopts *redisbroker.Options) *node {
	t.Helper()
	var o redisbroker.Options
	if bopts != nil {
		o = *bopts
	}
	o.Prefix = prefix
	if o.Timeout == 0 {
		// Generous: on a loaded CI machine a slow answer must not pass
		// for an outage. The tests about timeouts set their own.
		o.Timeout = 5 * time.Second
	}
	var logger = o.Logger
	n := &node{name: name, tracker: wsroute.NewTracker()}
	if logger == nil {
		logger, n.logs = testLogger(t)
		o.Logger = logger
	}
	n.broker = redisbroker.New(client, &o)
	n.hub = hub.New(&hub.Options{
		Broker:   n.broker,
		Node:     name,
		Logger:   logger,
		Describe: func(c *wsroute.Conn) map[string]string { return map[string]string{"user": c.Query("user")} },
	})
	mux := http.NewServeMux()
	wopts := &wsroute.Options{Tracker: n.tracker, Logger: logger}
	mux.Handle("/ws/{room}", wopts.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		// The ID goes first, before any broadcast can be queued.
		if err := c.SendText(ctx, "id:"+c.ID()); err != nil {
			return err
		}
		room := c.Param("room")
		if err := n.hub.Join(c, room); err != nil {
			return err
		}
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			n.hub.Broadcast(ctx, room, msg.Type, msg.Data, hub.Except(c))
		}
		return nil
	}))
	n.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.hub.Shutdown(ctx)
		n.tracker.Shutdown(ctx)
		n.Server.Close()
	})
	return n
}

// member is a WebSocket client in a room of a node.
type member struct {
	c    *websocket.Conn
	id   string
	msgs chan wsroute.Message
	done chan struct{}
}

// join connects a client to room on n and waits until n holds it.
func join(t testing.TB, n *node, room, user string) *member {
	t.Helper()
	ctx := testutil.Ctx(t)
	url := "ws" + strings.TrimPrefix(n.URL, "http") + "/ws/" + room + "?user=" + user
	c, _, err := websocket.Dial(ctx, url, nil)
	testutil.NoErr(t, err)
	c.SetReadLimit(-1)
	_, first, err := c.Read(ctx)
	testutil.NoErr(t, err)
	id, ok := strings.CutPrefix(string(first), "id:")
	testutil.Check(t, ok, "first message %q, want the id", first)
	m := &member{c: c, id: id, msgs: make(chan wsroute.Message, 4096), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			typ, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			select {
			case m.msgs <- wsroute.Message{Type: wsroute.MessageType(typ), Data: data}:
			default:
				t.Errorf("member %s: receive buffer full", id)
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-m.done
	})
	testutil.Eventually(t, func() bool {
		return slices.ContainsFunc(n.hub.Members(room), func(c *wsroute.Conn) bool { return c.ID() == id })
	}, "member %s did not join %q on %s", id, room, n.name)
	return m
}

func (m *member) send(t testing.TB, typ websocket.MessageType, data string) {
	t.Helper()
	testutil.NoErr(t, m.c.Write(testutil.Ctx(t), typ, []byte(data)))
}

// recv returns the next message, failing after five seconds.
func (m *member) recv(t testing.TB) wsroute.Message {
	t.Helper()
	select {
	case msg := <-m.msgs:
		return msg
	case <-time.After(5 * time.Second):
		t.Fatalf("member %s: no message within 5s", m.id)
		return wsroute.Message{}
	}
}

// quiet fails if a message arrives within d.
func (m *member) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case msg := <-m.msgs:
		t.Fatalf("member %s: unexpected message %q", m.id, msg.Data)
	case <-time.After(d):
	}
}

// subscribed waits until n nodes subscribe to room's channel.
func subscribed(t testing.TB, c redis.UniversalClient, prefix, room string, n int64) {
	t.Helper()
	ctx := testutil.Ctx(t)
	testutil.Eventually(t, func() bool { return numSub(ctx, c, prefix, "r", room) == n },
		"room %q: %d subscribers, want %d", room, numSub(ctx, c, prefix, "r", room), n)
}

func TestUnsubscribeWhenLastLocalMemberLeaves(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a := newNode(t, rc, prefix, "A", nil)
	b := newNode(t, rc, prefix, "B", nil)
	sender := join(t, a, "room", "ann")
	m1 := join(t, b, "room", "bob")
	m2 := join(t, b, "room", "cid")
	subscribed(t, rc, prefix, "room", 2)
	testutil.Equal(t, b.broker.Stats().Rooms, 1)

	m1.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool { return b.hub.Count("room") == 1 }, "m1 did not leave")
	subscribed(t, rc, prefix, "room", 2) // m2 is still there
	m2.c.Close(websocket.StatusNormalClosure, "")
	subscribed(t, rc, prefix, "room", 1)
	testutil.Equal(t, b.broker.Stats().Rooms, 0)

	// Joining again subscribes again.
	m3 := join(t, b, "room", "dee")
	subscribed(t, rc, prefix, "room", 2)
	sender.send(t, websocket.MessageText, "back")
	testutil.Equal(t, string(m3.recv(t).Data), "back")
}
