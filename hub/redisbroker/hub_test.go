package redisbroker_test

import (
	"bytes"
	"context"
	"errors"
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

func TestBroadcastAcrossNodesExceptSender(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a := newNode(t, rc, prefix, "A", nil)
	b := newNode(t, rc, prefix, "B", nil)

	sender := join(t, a, "lobby", "ann")
	peerA := join(t, a, "lobby", "bob")
	peerB1 := join(t, b, "lobby", "cid")
	peerB2 := join(t, b, "lobby", "dee")
	elsewhere := join(t, b, "kitchen", "eve")
	// One subscription per node and room, whatever the member count.
	subscribed(t, rc, prefix, "lobby", 2)
	subscribed(t, rc, prefix, "kitchen", 1)

	sender.send(t, websocket.MessageText, "hello")
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	sender.send(t, websocket.MessageBinary, string(binary))
	for _, m := range []*member{peerA, peerB1, peerB2} {
		got := m.recv(t)
		testutil.Equal(t, got.Type, wsroute.MessageText)
		testutil.Equal(t, string(got.Data), "hello")
		got = m.recv(t)
		testutil.Equal(t, got.Type, wsroute.MessageBinary)
		testutil.Check(t, bytes.Equal(got.Data, binary), "binary message changed in transit: %x", got.Data)
	}
	sender.quiet(t, 200*time.Millisecond)
	elsewhere.quiet(t, 0)

	// A member of B answers: A's members get it, B's other member too.
	peerB1.send(t, websocket.MessageText, "hi from B")
	for _, m := range []*member{sender, peerA, peerB2} {
		testutil.Equal(t, string(m.recv(t).Data), "hi from B")
	}
	peerB1.quiet(t, 200*time.Millisecond)

	// Each node got the other's messages once, and never its own back.
	testutil.Equal(t, a.broker.Stats().Received, uint64(1))
	testutil.Equal(t, b.broker.Stats().Received, uint64(2))
	testutil.Equal(t, a.broker.Stats().Published, uint64(2))
	testutil.Equal(t, b.broker.Stats().Published, uint64(1))
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

func TestSendToConnectionOnOtherNode(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a := newNode(t, rc, prefix, "A", nil)
	b := newNode(t, rc, prefix, "B", nil)
	onA := join(t, a, "r1", "ann")
	onB := join(t, b, "r2", "bob")
	ctx := testutil.Ctx(t)

	// The route to onB is written by B's presence goroutine, right
	// after the join; wait for it rather than race it.
	var err error
	testutil.Eventually(t, func() bool {
		err = a.hub.SendTo(ctx, onB.id, wsroute.MessageText, []byte("psst"))
		return err == nil
	}, "SendTo a member of B: %v", err)
	got := onB.recv(t)
	testutil.Equal(t, string(got.Data), "psst")
	// onA's route is written by A's presence goroutine just as
	// asynchronously: it usually is by now, but wait for it too.
	testutil.Eventually(t, func() bool {
		err = b.hub.SendTo(ctx, onA.id, wsroute.MessageBinary, []byte{0, 1, 2})
		return err == nil
	}, "SendTo a member of A: %v", err)
	got = onA.recv(t)
	testutil.Equal(t, got.Type, wsroute.MessageBinary)
	testutil.Check(t, bytes.Equal(got.Data, []byte{0, 1, 2}), "got %x", got.Data)

	before := a.broker.Stats().NoSuchConn
	err = a.hub.SendTo(ctx, "no-such-connection", wsroute.MessageText, []byte("?"))
	testutil.Check(t, errors.Is(err, hub.ErrNoSuchConn), "SendTo an unknown ID: %v, want hub.ErrNoSuchConn", err)
	testutil.Check(t, errors.Is(err, redisbroker.ErrNoSuchConn), "SendTo an unknown ID: %v, want redisbroker.ErrNoSuchConn", err)
	testutil.Equal(t, a.broker.Stats().NoSuchConn, before+1)
	testutil.Equal(t, a.broker.Stats().PublishErrors, uint64(0))

	// Once onB is gone, its route is gone too.
	onB.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool {
		err = a.hub.SendTo(ctx, onB.id, wsroute.MessageText, []byte("late"))
		return errors.Is(err, hub.ErrNoSuchConn)
	}, "SendTo a member that left: %v", err)
}

func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a := newNode(t, rc, prefix, "A", nil)
	b := newNode(t, rc, prefix, "B", nil)
	ann := join(t, a, "lobby", "ann")
	bob := join(t, b, "lobby", "bob")
	cid := join(t, b, "lobby", "cid")
	join(t, b, "kitchen", "dee")
	ctx := testutil.Ctx(t)

	type who struct{ node, id, user string }
	want := []who{{"A", ann.id, "ann"}, {"B", bob.id, "bob"}, {"B", cid.id, "cid"}}
	slices.SortFunc(want, func(x, y who) int { return strings.Compare(x.node+x.id, y.node+y.id) })
	presence := func(n *node) []who {
		ms, err := n.hub.Presence(ctx, "lobby")
		testutil.NoErr(t, err)
		var out []who
		for _, m := range ms {
			out = append(out, who{m.Node, m.ConnID, m.Meta["user"]})
		}
		return out
	}
	for _, n := range []*node{a, b} {
		var got []who
		testutil.Eventually(t, func() bool { got = presence(n); return slices.Equal(got, want) },
			"presence from %s: %v, want %v", n.name, got, want)
	}

	bob.c.Close(websocket.StatusNormalClosure, "")
	want = slices.DeleteFunc(want, func(w who) bool { return w.id == bob.id })
	var got []who
	testutil.Eventually(t, func() bool { got = presence(a); return slices.Equal(got, want) },
		"presence after bob left: %v, want %v", got, want)
}

// A node that dies without cleaning up (here: cut off from Redis, as a
// killed process is) leaves its members in presence until PresenceTTL.
func TestKilledNodeExpiresFromPresence(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	a := newNode(t, rc, prefix, "A", nil)

	const ttl = time.Second
	px := newProxy(t, rc.Options().Addr)
	opt := *rc.Options()
	opt.Addr = px.addr()
	opt.MaxRetries = -1
	doomedClient := redis.NewClient(&opt)
	t.Cleanup(func() { doomedClient.Close() })
	doomed := newNode(t, doomedClient, prefix, "doomed", &redisbroker.Options{PresenceTTL: ttl, Heartbeat: 200 * time.Millisecond})

	join(t, a, "lobby", "ann")
	ghost := join(t, doomed, "lobby", "ghost")
	ctx := testutil.Ctx(t)
	count := func() int {
		ms, err := a.hub.Presence(ctx, "lobby")
		testutil.NoErr(t, err)
		return len(ms)
	}
	testutil.Eventually(t, func() bool { return count() == 2 }, "presence from A: %d members, want 2", count())
	time.Sleep(3 * 200 * time.Millisecond) // a few heartbeats: still there
	testutil.Equal(t, count(), 2)

	px.cut()
	cutAt := time.Now()
	testutil.Eventually(t, func() bool { return count() == 1 }, "the cut-off node's member is still listed %v later", time.Since(cutAt))
	gone := time.Since(cutAt)
	t.Logf("members of a node cut off from Redis left presence %v later (PresenceTTL %v)", gone.Round(time.Millisecond), ttl)
	testutil.Check(t, gone <= ttl+500*time.Millisecond, "expired after %v, want at most PresenceTTL %v", gone, ttl)
	err := a.hub.SendTo(ctx, ghost.id, wsroute.MessageText, []byte("?"))
	testutil.Check(t, errors.Is(err, hub.ErrNoSuchConn), "SendTo the expired member: %v", err)
}
