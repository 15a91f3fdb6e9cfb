package natsbroker_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/natsbroker"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// inbox collects what a broker delivers.
type inbox struct {
	mu  sync.Mutex
	got []hub.Envelope
}

func (in *inbox) deliver(e hub.Envelope) {
	in.mu.Lock()
	in.got = append(in.got, e)
	in.mu.Unlock()
}

func (in *inbox) room(room string) []hub.Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []hub.Envelope
	for _, e := range in.got {
		if e.Room == room && e.Presence == nil {
			out = append(out, e)
		}
	}
	return out
}

func openBroker(t testing.TB, nc *nats.Conn, node string, opts *natsbroker.Options) (*natsbroker.Broker, *inbox, error) {
	t.Helper()
	b := natsbroker.New(nc, opts)
	in := &inbox{}
	err := b.Open(node, in.deliver)
	t.Cleanup(func() { b.Close() })
	return b, in, err
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	nc := connect(t, url)
	b := natsbroker.New(nc, &natsbroker.Options{Prefix: testPrefix(t, url)})
	ctx := testutil.Ctx(t)
	e := hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")}

	testutil.Check(t, errors.Is(b.Publish(ctx, e), natsbroker.ErrNotOpen), "Publish before Open")
	testutil.NoErr(t, b.Open("n1", func(hub.Envelope) {}))
	testutil.Equal(t, b.Node(), "n1")
	testutil.Check(t, errors.Is(b.Open("n1", func(hub.Envelope) {}), natsbroker.ErrAlreadyOpen), "second Open")
	testutil.NoErr(t, b.Publish(ctx, e))
	_, err := b.Append(ctx, e, hub.History{})
	testutil.Check(t, err != nil && strings.Contains(err.Error(), "Size"), "Append without a Size: %v", err)
	testutil.Check(t, b.Stats().Connected, "not connected after Open: %+v", b.Stats())
	testutil.NoErr(t, b.Close())
	testutil.NoErr(t, b.Close())
	testutil.Check(t, errors.Is(b.Publish(ctx, e), natsbroker.ErrClosed), "Publish after Close")
	_, err = b.Members(ctx, "r")
	testutil.Check(t, errors.Is(err, natsbroker.ErrClosed), "Members after Close: %v", err)
	_, _, err = b.History(ctx, "r", hub.Position{}, 0)
	testutil.Check(t, errors.Is(err, natsbroker.ErrClosed), "History after Close: %v", err)
	testutil.Check(t, errors.Is(b.Open("n1", func(hub.Envelope) {}), natsbroker.ErrClosed), "Open after Close")
}

func TestOptionsPanic(t *testing.T) {
	t.Parallel()
	nc := &nats.Conn{}
	for _, o := range []natsbroker.Options{
		{Prefix: "a.b"},
		{Prefix: "a*"},
		{Timeout: -1},
		{PresenceTTL: time.Second, Heartbeat: time.Second},
		{PresenceTTL: time.Millisecond},
	} {
		func() {
			defer func() {
				r := recover()
				testutil.Check(t, r != nil && strings.HasPrefix(r.(string), "natsbroker: "), "options %+v: panic %v", o, r)
			}()
			natsbroker.New(nc, &o)
		}()
	}
}

// With NATS unreachable, Open, Publish and Append return errors within
// Options.Timeout, and the outage is logged once, not per message.
func TestNATSUnreachable(t *testing.T) {
	t.Parallel()
	nc := connect(t, "nats://127.0.0.1:"+strconv.Itoa(testutil.FreePort(t))) // nothing listens there
	logger, logs := testLogger(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	b, _, err := openBroker(t, nc, "lonely", &natsbroker.Options{Timeout: timeout, Logger: logger})
	testutil.Check(t, errors.Is(err, natsbroker.ErrUnavailable), "Open: %v, want ErrUnavailable", err)
	const slack = time.Second
	testutil.Check(t, time.Since(start) < timeout+slack, "Open took %v", time.Since(start))
	ctx := testutil.Ctx(t)
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		err := b.Publish(ctx, hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")})
		slowest = max(slowest, time.Since(start))
		testutil.Check(t, errors.Is(err, natsbroker.ErrUnavailable), "Publish %d: %v", i, err)
		_, err = b.Append(ctx, hub.Envelope{Room: "r", Type: wsroute.MessageText, Data: []byte("x")}, hub.History{Size: 10})
		testutil.Check(t, errors.Is(err, natsbroker.ErrUnavailable), "Append %d: %v", i, err)
	}
	testutil.Check(t, slowest < timeout+slack, "a Publish took %v, Options.Timeout is %v", slowest, timeout)
	testutil.Equal(t, b.Stats().PublishErrors, uint64(40))
	testutil.Check(t, strings.Count(logs.String(), "NATS unreachable") <= 1, "the outage was logged more than once:\n%s", logs)
}

// A stranger publishing on the broker's subjects is dropped and counted.
func TestForeignPayloadsAreDropped(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	prefix := testPrefix(t, url)
	nc := connect(t, url)
	b, in, err := openBroker(t, nc, "B", &natsbroker.Options{Prefix: prefix})
	testutil.NoErr(t, err)
	b.Subscribe("room")
	other := connect(t, url)
	for _, p := range []string{"", "hello", "\x01\x07", "\x02\x01"} {
		testutil.NoErr(t, other.Publish(prefix+".r.cm9vbQ", []byte(p)))
	}
	testutil.NoErr(t, other.Flush())
	testutil.Eventually(t, func() bool { return b.Stats().Malformed == 4 }, "malformed: %d, want 4", b.Stats().Malformed)
	testutil.Equal(t, len(in.room("room")), 0)
}
