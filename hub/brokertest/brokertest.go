package brokertest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/internal/testutil"
	"github.com/nexio-go/nexio/wsroute"
)

// ExpiryBound is how soon the members of a node that stopped without
// saying so must disappear from the other nodes (hub.Broker's contract).
const ExpiryBound = 10 * time.Second

// slack absorbs a loaded CI machine in the bounds Run checks; the time
// actually taken is logged.
const slack = 2 * time.Second

// Option adds what Run needs to check more of the contract.
type Option func(*config)

type config struct {
	isolate func(t *testing.T, b hub.Broker) (restore func())
	backend *Backend
}

// WithIsolate lets Run cut a node off the backend, as a crash of its
// process or a network partition would, without the broker being told:
// isolate must make b unable to reach the backend (and the backend
// unable to reach b) until restore is called. Run may never call restore
// (a crashed node); the broker is closed at the end of the test either
// way. [Proxy] does the cutting when each broker's client dials the
// backend through its own proxy.
func WithIsolate(isolate func(t *testing.T, b hub.Broker) (restore func())) Option {
	return func(c *config) { c.isolate = isolate }
}

// Backend controls a private backend: one that Run may stop, so
// newBroker must return brokers on it (not on a server other tests
// share).
type Backend struct {
	// New returns a new, unopened broker on this backend; the same
	// rules as Run's newBroker apply.
	New func(t *testing.T) hub.Broker
	// Stop makes the backend unreachable: kill the server.
	Stop func(t *testing.T)
	// Start brings it back on the same address, with the data it kept.
	Start func(t *testing.T)
	// Wipe, if not nil, deletes the backend's data while it is stopped,
	// so that the next Start comes back empty (a server restarted without
	// persistence).
	Wipe func(t *testing.T)
}

// WithBackend lets Run stop and start the backend. The subtests that use
// it do not run in parallel with one another.
func WithBackend(b Backend) Option {
	return func(c *config) { c.backend = &b }
}

// Run checks newBroker's brokers against the hub.Broker contract (and
// hub.HistoryBroker's, when they implement it), in subtests of t.
func Run(t *testing.T, newBroker func(t *testing.T) hub.Broker, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &suite{newBroker: newBroker, cfg: cfg}
	t.Run("Broadcast", s.testBroadcast)
	t.Run("Except", s.testExcept)
	t.Run("SendTo", s.testSendTo)
	t.Run("Presence", s.testPresence)
	t.Run("PresenceEvents", s.testPresenceEvents)
	t.Run("OrderPerPublisher", s.testOrder)
	t.Run("Expiry", s.testExpiry)
	t.Run("Hub", s.testHub)
	t.Run("History", s.testHistory)
	t.Run("HubHistory", s.testHubHistory)
	t.Run("Backend", s.testBackend)
}

type suite struct {
	newBroker func(t *testing.T) hub.Broker
	cfg       config
}

// node is one opened broker and what it delivered.
type node struct {
	name string
	b    hub.Broker
	in   *inbox
}

// open opens a broker as node name, closed at cleanup. Open may fail
// (the backend is slow to answer): brokers keep trying in the
// background, so the error is only logged.
func open(t *testing.T, b hub.Broker, name string) *node {
	t.Helper()
	n := &node{name: name, b: b, in: &inbox{}}
	if err := b.Open(name, n.in.deliver); err != nil {
		t.Logf("Open(%q): %v (the broker retries in the background)", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return n
}

func (s *suite) nodes(t *testing.T, names ...string) []*node {
	t.Helper()
	out := make([]*node, len(names))
	for i, name := range names {
		out[i] = open(t, s.newBroker(t), name)
	}
	return out
}

// inbox collects what a broker delivered, and checks that deliver is
// never called concurrently.
type inbox struct {
	mu      sync.Mutex
	got     []hub.Envelope
	running bool
	overlap bool
}

func (in *inbox) deliver(e hub.Envelope) {
	in.mu.Lock()
	if in.running {
		in.overlap = true
	}
	in.running = true
	e.Data = bytes.Clone(e.Data)
	in.got = append(in.got, e)
	in.running = false
	in.mu.Unlock()
}

// all returns what was delivered, without probes.
func (in *inbox) all() []hub.Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []hub.Envelope
	for _, e := range in.got {
		if e.Presence == nil && !isProbe(e) {
			out = append(out, e)
		}
	}
	return out
}

// messages returns what was delivered of room (or to a connection, with
// room ""), without probes and presence events.
func (in *inbox) messages(room string) []hub.Envelope {
	var out []hub.Envelope
	for _, e := range in.all() {
		if e.Room == room {
			out = append(out, e)
		}
	}
	return out
}

// events returns the presence events delivered for room.
func (in *inbox) events(room string) []hub.Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []hub.Envelope
	for _, e := range in.got {
		if e.Presence != nil && e.Room == room {
			out = append(out, e)
		}
	}
	return out
}

func (in *inbox) probes(room string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, e := range in.got {
		if e.Room == room && isProbe(e) {
			n++
		}
	}
	return n
}

func (in *inbox) checkSerial(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	testutil.Check(t, !in.overlap, "deliver was called concurrently: the contract says one message at a time")
}

const probePrefix = "brokertest-probe:"

func isProbe(e hub.Envelope) bool { return bytes.HasPrefix(e.Data, []byte(probePrefix)) }

// ready waits until every node in subs hears pub on room: brokers may
// subscribe asynchronously. It publishes probes (which the inboxes
// leave out) until each has arrived somewhere.
func ready(t *testing.T, pub *node, room string, subs ...*node) {
	t.Helper()
	ctx := testutil.Ctx(t)
	i := 0
	testutil.Eventually(t, func() bool {
		i++
		pub.b.Publish(ctx, hub.Envelope{Origin: pub.name, Room: room, Type: wsroute.MessageText, Data: fmt.Appendf(nil, "%s%d", probePrefix, i)})
		for _, n := range subs {
			if n.in.probes(room) == 0 {
				return false
			}
		}
		return true
	}, "the nodes never heard %s on room %q", pub.name, room)
}

// text returns a text envelope of room from origin.
func text(origin, room, data string) hub.Envelope {
	return hub.Envelope{Origin: origin, Room: room, Type: wsroute.MessageText, Data: []byte(data)}
}

func datas(es []hub.Envelope) string {
	var sb strings.Builder
	for i, e := range es {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.Write(e.Data)
	}
	return sb.String()
}

func memberIDs(ms []hub.Member) map[string]string {
	out := make(map[string]string)
	for _, m := range ms {
		out[m.ConnID] = m.Node
	}
	return out
}
