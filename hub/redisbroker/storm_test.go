package redisbroker_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// TestResumeStormSharesStoreReads: the members of a room come back at
// once (a node died, they reconnect to this one), all resuming from the
// same message. Each must get exactly the messages after it, and the
// node must read the store and Stamp each message once for all of them,
// not once per member: Options.Stamp runs once per message, and a storm
// of per-member reads of the whole history was what made the store time
// out and members fail with 1011.
func TestResumeStormSharesStoreReads(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	logger, _ := testLogger(t)
	var stamps atomic.Int64
	h := hub.New(&hub.Options{
		Broker:        redisbroker.New(client, &redisbroker.Options{Prefix: testPrefix(t, client), Logger: logger}),
		Logger:        logger,
		History:       hub.History{Size: 1000, TTL: time.Minute},
		QueueMessages: 1000,
		Stamp: func(_ string, pos hub.Position, typ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte) {
			stamps.Add(1)
			return typ, fmt.Appendf(nil, "%d %s", pos.Offset, data)
		},
	})
	tracker := wsroute.NewTracker()
	srv := httptest.NewServer((&wsroute.Options{Tracker: tracker, Logger: logger}).Handle(func(ctx context.Context, c *wsroute.Conn) error {
		e, o, _ := strings.Cut(c.Query("since"), ":")
		off, _ := strconv.ParseUint(o, 10, 64)
		if err := c.Accept(ctx); err != nil {
			return err
		}
		rec, err := h.JoinFrom(c, "storm", hub.Position{Epoch: e, Offset: off})
		if err != nil {
			return err
		}
		if !rec.Recovered {
			return c.Close(4000, "not recovered")
		}
		c.CloseRead()
		<-c.Done()
		return nil
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		tracker.Shutdown(ctx)
		srv.Close()
	})

	const members, msgs = 100, 300
	var first hub.Position
	for i := range msgs {
		pos, err := h.Publish(testutil.Ctx(t), "storm", wsroute.MessageText, []byte(strconv.Itoa(i)))
		testutil.NoErr(t, err)
		if i == 0 {
			first = pos
		}
	}
	stamps.Store(0)

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?since=" + first.Epoch + ":1"
	start := make(chan struct{})
	errs := make(chan error, members)
	var wg sync.WaitGroup
	for range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx := testutil.Ctx(t)
			c, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			for want := uint64(2); want <= msgs; want++ {
				_, data, err := c.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("waiting for message %d: %w", want, err)
					return
				}
				if got, _, _ := strings.Cut(string(data), " "); got != strconv.FormatUint(want, 10) {
					errs <- fmt.Errorf("got message %q, want offset %d", data, want)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perMember := int64(members * (msgs - 1))
	testutil.Check(t, stamps.Load() <= perMember/2,
		"%d members resuming at once made %d Stamp calls for %d messages: the store was read once per member, not shared",
		members, stamps.Load(), msgs-1)
}
