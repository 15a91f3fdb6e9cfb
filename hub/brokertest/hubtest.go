package brokertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// hubNode is one process of a deployment: a Hub on a broker, serving
// /ws/{room}. A member's text messages are broadcast to its room except
// itself; a message "to:<id>:<text>" is sent to connection id instead.
type hubNode struct {
	*httptest.Server
	hub *hub.Hub
}

func newHubNode(t *testing.T, b hub.Broker, name string, more ...func(*hub.Options)) *hubNode {
	t.Helper()
	o := &hub.Options{Broker: b, Node: name,
		Describe: func(c *wsroute.Conn) map[string]string { return map[string]string{"user": c.Param("room") + "-user"} }}
	for _, f := range more {
		f(o)
	}
	h := hub.New(o)
	tracker := wsroute.NewTracker()
	mux := http.NewServeMux()
	mux.Handle("/ws/{room}", (&wsroute.Options{Tracker: tracker}).Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		// The ID goes first, before anything the hub queues.
		if err := c.SendText(ctx, "id:"+c.ID()); err != nil {
			return err
		}
		// ?epoch=&offset= joins from that position (JoinFrom).
		if e := c.Query("epoch"); e != "" {
			off, _ := strconv.ParseUint(c.Query("offset"), 10, 64)
			if _, err := h.JoinFrom(c, c.Param("room"), hub.Position{Epoch: e, Offset: off}); err != nil {
				return err
			}
		} else if err := h.Join(c, c.Param("room")); err != nil {
			return err
		}
		for {
			msg, err := c.ReceiveText(ctx)
			if err != nil {
				return err
			}
			if rest, ok := strings.CutPrefix(msg, "to:"); ok {
				id, text, _ := strings.Cut(rest, ":")
				if err := h.SendTo(ctx, id, wsroute.MessageText, []byte(text)); err != nil {
					c.SendText(ctx, "error:"+err.Error())
				}
				continue
			}
			h.BroadcastText(ctx, c.Param("room"), msg, hub.Except(c))
		}
	}))
	n := &hubNode{Server: httptest.NewServer(mux), hub: h}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		tracker.Shutdown(ctx)
		n.Server.Close()
	})
	return n
}

// client is a WebSocket client of a hubNode. A goroutine reads its
// messages into msgs: a read that times out does not end the connection
// (coder/websocket closes a connection whose Read is cancelled).
type client struct {
	c    *websocket.Conn
	id   string
	msgs chan string
}

func (n *hubNode) dial(t *testing.T, room string) *client {
	t.Helper()
	ctx := testutil.Ctx(t)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws/"+room, nil)
	testutil.NoErr(t, err)
	cl := &client{c: c, msgs: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(cl.msgs)
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				return
			}
			cl.msgs <- string(p)
		}
	}()
	t.Cleanup(func() { c.CloseNow(); <-done })
	hello := cl.read(t)
	id, ok := strings.CutPrefix(hello, "id:")
	testutil.Check(t, ok, "first message %q, want id:…", hello)
	cl.id = id
	return cl
}

func (cl *client) send(t *testing.T, text string) {
	t.Helper()
	testutil.NoErr(t, cl.c.Write(testutil.Ctx(t), websocket.MessageText, []byte(text)))
}

func (cl *client) read(t *testing.T) string {
	t.Helper()
	m, ok := cl.tryRead(10 * time.Second)
	testutil.Check(t, ok, "no message within 10s")
	return m
}

// tryRead returns the next message, or false if none came within d.
func (cl *client) tryRead(d time.Duration) (string, bool) {
	select {
	case m, ok := <-cl.msgs:
		return m, ok
	case <-time.After(d):
		return "", false
	}
}

// Two Hubs on the broker, with real WebSocket members: a broadcast
// reaches the members of both nodes except its sender, SendTo reaches a
// member on the other node, Presence lists both nodes' members.
func (s *suite) testHub(t *testing.T) {
	t.Parallel()
	na := newHubNode(t, s.newBroker(t), "A")
	nb := newHubNode(t, s.newBroker(t), "B")
	a1, a2 := na.dial(t, "chat"), na.dial(t, "chat")
	b1 := nb.dial(t, "chat")
	ctx := testutil.Ctx(t)

	var ms []hub.Member
	testutil.Eventually(t, func() bool {
		var err error
		ms, err = na.hub.Presence(ctx, "chat")
		return err == nil && len(ms) == 3
	}, "A's presence of chat: %v", ms)
	ids := memberIDs(ms)
	testutil.Check(t, ids[a1.id] == "A" && ids[a2.id] == "A" && ids[b1.id] == "B", "presence %v", ms)
	for _, m := range ms {
		testutil.Equal(t, m.Meta["user"], "chat-user")
	}

	// The broker may subscribe B asynchronously: a2 repeats until b1
	// hears it, then every later message arrives.
	testutil.Eventually(t, func() bool {
		a2.send(t, "warm-up")
		m, ok := b1.tryRead(100 * time.Millisecond)
		return ok && m == "warm-up"
	}, "b1 never heard a2")
	drain := func(cl *client, stop string) {
		for cl.read(t) != stop {
		}
	}
	a2.send(t, "sync")
	drain(b1, "sync")
	drain(a1, "sync")

	a1.send(t, "hello from a1")
	testutil.Equal(t, b1.read(t), "hello from a1")
	testutil.Equal(t, a2.read(t), "hello from a1")
	b1.send(t, "hello from b1")
	testutil.Equal(t, a1.read(t), "hello from b1")
	testutil.Equal(t, a2.read(t), "hello from b1")
	// a1 did not get its own message back: the next thing it reads is
	// b1's.

	a1.send(t, "to:"+b1.id+":just for you")
	testutil.Equal(t, b1.read(t), "just for you")
	b1.send(t, "to:"+a2.id+":and back")
	testutil.Equal(t, a2.read(t), "and back")
	a1.send(t, "to:nobody:lost")
	testutil.Check(t, strings.Contains(a1.read(t), "error:"), "SendTo nobody did not fail")

	// b1 leaves: presence forgets it everywhere.
	b1.c.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, func() bool {
		var err error
		ms, err = na.hub.Presence(ctx, "chat")
		return err == nil && len(ms) == 2
	}, "A's presence after b1 left: %v", ms)
}

// dialFrom joins room from position since (JoinFrom).
func (n *hubNode) dialFrom(t *testing.T, room string, since hub.Position) *client {
	t.Helper()
	return n.dial(t, room+"?epoch="+since.Epoch+"&offset="+strconv.FormatUint(since.Offset, 10))
}

// Two Hubs with Options.History on HistoryBrokers: Publish on one node
// returns positions that members on both nodes receive in order; a
// member that joins from an earlier position on the other node gets
// what it missed, then live messages, with no gap and no duplicate; and
// OnPresence reports the other node's members.
func (s *suite) testHubHistory(t *testing.T) {
	t.Parallel()
	ba, bb := s.newBroker(t), s.newBroker(t)
	if _, ok := ba.(hub.HistoryBroker); !ok {
		t.Skipf("%T does not implement hub.HistoryBroker", ba)
	}
	var mu sync.Mutex
	var seen []hub.PresenceEvent
	hist := func(o *hub.Options) { o.History = hub.History{Size: 100, TTL: time.Hour} }
	na := newHubNode(t, ba, "A", hist, func(o *hub.Options) {
		o.OnPresence = func(room string, e hub.PresenceEvent) {
			mu.Lock()
			seen = append(seen, e)
			mu.Unlock()
		}
	})
	nb := newHubNode(t, bb, "B", hist)
	a1 := na.dial(t, "h")
	b1 := nb.dial(t, "h")
	ctx := testutil.Ctx(t)

	// A hears B's member join.
	testutil.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range seen {
			if e.Joined && e.Member.ConnID == b1.id && e.Member.Node == "B" {
				return true
			}
		}
		return false
	}, "A's OnPresence never reported b1 joining on B")

	// The broker may subscribe B asynchronously: publish until b1 has
	// one, then positions run on from there.
	var first hub.Position
	testutil.Eventually(t, func() bool {
		pos, err := na.hub.Publish(ctx, "h", wsroute.MessageText, []byte("warm-up"))
		if err != nil {
			return false
		}
		first = pos
		m, ok := b1.tryRead(200 * time.Millisecond)
		return ok && m == "warm-up"
	}, "b1 never got a published message")
	// Skip the warm-up copies.
	drain := func(cl *client) {
		for cl.read(t) != "sync" {
		}
	}
	syncPos, err := na.hub.Publish(ctx, "h", wsroute.MessageText, []byte("sync"))
	testutil.NoErr(t, err)
	drain(b1)
	drain(a1)
	var ps []hub.Position
	for i := range 3 {
		pos, err := na.hub.Publish(ctx, "h", wsroute.MessageText, []byte(strconv.Itoa(i)))
		testutil.NoErr(t, err)
		ps = append(ps, pos)
	}
	for i, p := range ps {
		testutil.Check(t, p.Epoch == first.Epoch && p.Offset == syncPos.Offset+uint64(i)+1,
			"Publish %d returned %+v after %+v: offsets must run on", i, p, syncPos)
	}
	for _, cl := range []*client{a1, b1} {
		for i := range 3 {
			testutil.Equal(t, cl.read(t), strconv.Itoa(i))
		}
	}
	// A member joins on B from the position of "sync": it gets 0, 1, 2,
	// then what comes next, once each.
	b2 := nb.dialFrom(t, "h", syncPos)
	_, err = na.hub.Publish(ctx, "h", wsroute.MessageText, []byte("3"))
	testutil.NoErr(t, err)
	for i := range 4 {
		testutil.Equal(t, b2.read(t), strconv.Itoa(i))
	}
	testutil.Equal(t, b1.read(t), "3")
}
