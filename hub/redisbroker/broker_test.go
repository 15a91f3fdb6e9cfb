package redisbroker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// inbox collects what a broker delivers.
type inbox struct {
	mu   sync.Mutex
	got  []hub.Envelope
	more chan struct{}
}

func newInbox() *inbox { return &inbox{more: make(chan struct{}, 1)} }

func (in *inbox) deliver(e hub.Envelope) {
	in.mu.Lock()
	in.got = append(in.got, e)
	in.mu.Unlock()
	select {
	case in.more <- struct{}{}:
	default:
	}
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.got)
}

func (in *inbox) all() []hub.Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]hub.Envelope(nil), in.got...)
}

// openBroker opens a broker as a Hub would, closed at cleanup. Options
// without a Timeout get a generous one (5s), so that Open confirming its
// subscription slowly on a loaded machine is not taken for an outage;
// tests about timeouts set their own.
func openBroker(t testing.TB, c redis.UniversalClient, node string, opts *redisbroker.Options) (*redisbroker.Broker, *inbox, error) {
	t.Helper()
	var o redisbroker.Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	b := redisbroker.New(c, &o)
	in := newInbox()
	err := b.Open(node, in.deliver)
	t.Cleanup(func() { b.Close() })
	return b, in, err
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	b := redisbroker.New(rc, &redisbroker.Options{Prefix: prefix})
	ctx := testutil.Ctx(t)
	e := hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")}

	testutil.Check(t, errors.Is(b.Publish(ctx, e), redisbroker.ErrNotOpen), "Publish before Open")
	testutil.NoErr(t, b.Open("n1", func(hub.Envelope) {}))
	testutil.Equal(t, b.Node(), "n1")
	testutil.Equal(t, b.PubSubMode(), redisbroker.ClassicPubSub)
	testutil.Check(t, errors.Is(b.Open("n1", func(hub.Envelope) {}), redisbroker.ErrAlreadyOpen), "second Open")
	testutil.NoErr(t, b.Publish(ctx, e))
	testutil.Check(t, b.Stats().Subscribed, "not subscribed after Open: %+v", b.Stats())
	testutil.NoErr(t, b.Close())
	testutil.NoErr(t, b.Close())
	testutil.Check(t, errors.Is(b.Publish(ctx, e), redisbroker.ErrClosed), "Publish after Close")
	_, err := b.Members(ctx, "r")
	testutil.Check(t, errors.Is(err, redisbroker.ErrClosed), "Members after Close: %v", err)
	testutil.Check(t, errors.Is(b.Open("n1", func(hub.Envelope) {}), redisbroker.ErrClosed), "Open after Close")
}

// Whatever else is published on the broker's channels is dropped and
// counted, with one log line.
func TestForeignPayloadsAreDropped(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	logger, logs := testLogger(t)
	b, in, err := openBroker(t, rc, "B", &redisbroker.Options{Prefix: prefix, Logger: logger})
	testutil.NoErr(t, err)
	b.Subscribe("room")
	subscribed(t, rc, prefix, "room", 1)
	ctx := testutil.Ctx(t)
	for _, p := range []string{"", "hello", `{"v":1}`, "\x02\x01", "\x01\x01\x05ab"} {
		testutil.NoErr(t, rc.Publish(ctx, "{"+prefix+"}:r:room", p).Err())
	}
	testutil.Eventually(t, func() bool { return b.Stats().Malformed == 5 }, "malformed: %d, want 5", b.Stats().Malformed)
	testutil.Equal(t, in.len(), 0)
	testutil.Equal(t, strings.Count(logs.String(), "does not decode"), 1)
}

// With Redis unreachable, Open and Publish return errors within
// Options.Timeout, and the outage is logged once, not per message.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t) // nothing listens there
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	t.Cleanup(func() { rc.Close() })
	logger, logs := testLogger(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	b, _, err := openBroker(t, rc, "lonely", &redisbroker.Options{Timeout: timeout, Logger: logger})
	testutil.Check(t, errors.Is(err, redisbroker.ErrUnavailable), "Open: %v, want ErrUnavailable", err)
	// The slack is for loaded CI machines; unbounded, these calls would
	// wait for go-redis' dial retries, several seconds.
	const slack = time.Second
	testutil.Check(t, time.Since(start) < timeout+slack, "Open took %v", time.Since(start))

	ctx := testutil.Ctx(t)
	var slowest time.Duration
	for i := range 50 {
		start := time.Now()
		err := b.Publish(ctx, hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")})
		slowest = max(slowest, time.Since(start))
		testutil.Check(t, errors.Is(err, redisbroker.ErrUnavailable) || errors.Is(err, redisbroker.ErrTimeout),
			"Publish %d: %v", i, err)
	}
	testutil.Check(t, slowest < timeout+slack, "a Publish took %v, Options.Timeout is %v", slowest, timeout)
	_, err = b.Members(ctx, "r")
	testutil.Check(t, errors.Is(err, redisbroker.ErrUnavailable) || errors.Is(err, redisbroker.ErrTimeout), "Members: %v", err)
	testutil.Equal(t, b.Stats().PublishErrors, uint64(50))
	testutil.Equal(t, strings.Count(logs.String(), "Redis unreachable"), 1)
	testutil.Equal(t, b.Stats().Outages, uint64(1))
}

// A Redis that accepts connections and never answers (a frozen server,
// a partition) cannot hold a Publish longer than Options.Timeout.
func TestRedisSilent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var accepted []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				io.Copy(io.Discard, c) // read, never answer
				c.Close()
			}()
		}
	}()
	// go-redis waits ReadTimeout for an answer: the Broker must not.
	rc := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ReadTimeout: 2 * time.Second})
	t.Cleanup(func() {
		rc.Close()
		l.Close()
		// go-redis may abandon a connection whose command was cancelled
		// without closing it (the garbage collector does, later): the
		// frozen server hangs up itself rather than wait for that.
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	const timeout = 200 * time.Millisecond
	logger, _ := testLogger(t)
	b, _, _ := openBroker(t, rc, "frozen", &redisbroker.Options{Timeout: timeout, Logger: logger})
	ctx := testutil.Ctx(t)
	for i := range 5 {
		start := time.Now()
		err := b.Publish(ctx, hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")})
		took := time.Since(start)
		testutil.Check(t, err != nil, "Publish %d succeeded against a silent server", i)
		testutil.Check(t, took < timeout+time.Second, "Publish %d took %v, Options.Timeout is %v: %v", i, took, timeout, err)
	}
	start := time.Now()
	ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = b.Members(ctx2, "r")
	testutil.Check(t, err != nil && time.Since(start) < time.Second, "Members: %v after %v", err, time.Since(start))
}

// RemoveMember and AddMember called directly, in that order, leave the
// member present: a removal of a member that is not there is a no-op and
// must not swallow a later join (it did while the broker kept "tombs"
// against a leave overtaking its join, a race the Hub no longer has).
func TestPresenceRemoveThenAdd(t *testing.T) {
	t.Parallel()
	rc := newClient(t)
	prefix := testPrefix(t, rc)
	b, _, err := openBroker(t, rc, "A", &redisbroker.Options{Prefix: prefix})
	testutil.NoErr(t, err)
	other, _, err := openBroker(t, rc, "B", &redisbroker.Options{Prefix: prefix})
	testutil.NoErr(t, err)
	ctx := testutil.Ctx(t)
	ids := func(b *redisbroker.Broker) string {
		ms, err := b.Members(ctx, "r")
		testutil.NoErr(t, err)
		var out []string
		for _, m := range ms {
			out = append(out, m.ConnID)
		}
		return strings.Join(out, ",")
	}
	m := hub.Member{ConnID: "c1", Node: "A"}
	testutil.NoErr(t, b.RemoveMember(ctx, "r", m)) // not a member: nothing to do
	testutil.NoErr(t, b.AddMember(ctx, "r", m))
	testutil.Equal(t, ids(b), "c1")
	var got string
	testutil.Eventually(t, func() bool { got = ids(other); return got == "c1" }, "members seen from B: %q, want c1", got)

	// Leaving and joining again works too.
	testutil.NoErr(t, b.RemoveMember(ctx, "r", m))
	testutil.Equal(t, ids(b), "")
	testutil.NoErr(t, b.AddMember(ctx, "r", m))
	testutil.Equal(t, ids(b), "c1")
}
