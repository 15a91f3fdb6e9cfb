package redisbroker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are a broker's counters since New. Reading them is cheap: atomic
// loads and one short lock.
type Stats struct {
	Published      uint64 // messages published to Redis
	PublishErrors  uint64 // Publish calls that failed: Redis down or slow (ErrUnavailable, ErrTimeout)
	NoSuchConn     uint64 // messages to a connection that no node holds (ErrNoSuchConn)
	Received       uint64 // messages from other nodes handed to the Hub
	Duplicates     uint64 // messages from other nodes received again, or after a later one (go-redis sent a PUBLISH again); dropped
	Missed         uint64 // messages from other nodes that never arrived here: gaps in their sequence numbers, or, in rooms with history, gaps the history could not fill (see the package doc)
	Appended       uint64 // messages stored in a room's history and published (Append)
	Filled         uint64 // messages of rooms with history that pub/sub lost and this node read from the history instead, before the later ones
	Expired        uint64 // members of other nodes this node delivered a leave for because their node stopped refreshing its presence
	Malformed      uint64 // payloads on this node's channels that did not decode; dropped
	Reconnects     uint64 // times the subscription connection came back after a loss
	Outages        uint64 // times Redis became unreachable (commands, subscription or both)
	PresenceErrors uint64 // presence writes that failed; they are retried until Redis takes them
	Subscribed     bool   // the subscription connection is up and confirmed
	Rooms          int    // rooms this node wants to be subscribed to (rooms with local members)
}

type counters struct {
	published      atomic.Uint64
	publishErrors  atomic.Uint64
	noSuchConn     atomic.Uint64
	received       atomic.Uint64
	duplicates     atomic.Uint64
	missed         atomic.Uint64
	appended       atomic.Uint64
	filled         atomic.Uint64
	expired        atomic.Uint64
	malformed      atomic.Uint64
	reconnects     atomic.Uint64
	outages        atomic.Uint64
	presenceErrors atomic.Uint64
	subscribed     atomic.Bool
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	s := &b.stats
	b.mu.Lock()
	rooms := len(b.want)
	if b.node != "" {
		rooms-- // the node channel
	}
	b.mu.Unlock()
	return Stats{
		Published:      s.published.Load(),
		PublishErrors:  s.publishErrors.Load(),
		NoSuchConn:     s.noSuchConn.Load(),
		Received:       s.received.Load(),
		Duplicates:     s.duplicates.Load(),
		Missed:         s.missed.Load(),
		Appended:       s.appended.Load(),
		Filled:         s.filled.Load(),
		Expired:        s.expired.Load(),
		Malformed:      s.malformed.Load(),
		Reconnects:     s.reconnects.Load(),
		Outages:        s.outages.Load(),
		PresenceErrors: s.presenceErrors.Load(),
		Subscribed:     s.subscribed.Load(),
		Rooms:          rooms,
	}
}

// health tracks whether one path to Redis works: plain commands
// (publishing, presence, Members) or the subscription connection. The
// two fail and recover separately; the Broker logs them as one outage
// (see outage).
type health struct {
	b        *Broker
	path     string        // "commands" or "subscription", for the log
	onDown   chan struct{} // kicked when this path goes down, or nil
	isDown   atomic.Bool
	since    atomic.Int64               // when it went down, Unix ns
	last     atomic.Pointer[errorValue] // the latest failure
	failures atomic.Uint64              // during the current outage
	upAt     atomic.Int64               // when it last came back, Unix ns
}

type errorValue struct{ err error }

// fail records a failure of this path.
func (h *health) fail(err error) {
	if h.b.ctx.Err() != nil {
		return // closing: calls in flight were cut short, Redis is fine
	}
	h.failures.Add(1)
	h.last.Store(&errorValue{err})
	if h.isDown.CompareAndSwap(false, true) {
		h.since.Store(time.Now().UnixNano())
		h.b.outage.changed(h, err)
		if h.onDown != nil {
			kick(h.onDown)
		}
	}
}

// ok records a success of this path.
func (h *health) ok() {
	if !h.isDown.Load() || !h.isDown.CompareAndSwap(true, false) {
		return
	}
	h.upAt.Store(time.Now().UnixNano())
	h.b.outage.changed(h, nil)
}

// settling reports whether this path came back less than d ago.
func (h *health) settling(d time.Duration) bool {
	up := h.upAt.Load()
	return up != 0 && time.Since(time.Unix(0, up)) < d
}

// err describes the current outage, for calls refused during it.
func (h *health) err() error {
	d := time.Since(time.Unix(0, h.since.Load())).Round(time.Millisecond)
	if v := h.last.Load(); v != nil {
		return fmt.Errorf("%w: %s down for %v: %w", ErrUnavailable, h.path, d, v.err)
	}
	return fmt.Errorf("%w: %s down for %v", ErrUnavailable, h.path, d)
}

// unavailable returns why Publish must refuse a message now, or nil.
//
// A message is refused while either path is down, and for settle after
// the later of the two came back. The subscription counts as much as
// the commands: when this node's subscription connection broke, Redis
// most likely went away for every node (a restart, a failover), and the
// other nodes are reconnecting too. A PUBLISH that go-redis manages to
// send in that time (it waits out a short outage in its own dial
// retries) reaches Redis but not them, so it is refused and reported
// rather than lost without a word.
func (b *Broker) unavailable() error {
	if b.cmdHealth.isDown.Load() {
		return b.cmdHealth.err()
	}
	if b.subHealth.isDown.Load() {
		return b.subHealth.err()
	}
	if b.cmdHealth.settling(settle) || b.subHealth.settling(settle) {
		return fmt.Errorf("%w: Redis is back, waiting %v for every node to resubscribe", ErrUnavailable, settle)
	}
	return nil
}

// outage logs Redis outages: one warning when the first path goes down,
// one line when the last one is back, never one per message.
type outage struct {
	b     *Broker
	mu    sync.Mutex
	down  bool
	since time.Time
}

func (o *outage) changed(h *health, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cmd, sub := &o.b.cmdHealth, &o.b.subHealth
	switch {
	case err != nil && !o.down:
		o.down, o.since = true, time.Now()
		o.b.stats.outages.Add(1)
		o.b.log.Warn("redisbroker: Redis unreachable; messages between nodes fail until it is back (local members are still served)",
			"node", o.b.node, "path", h.path, "error", err)
	case err == nil && o.down && !cmd.isDown.Load() && !sub.isDown.Load():
		o.down = false
		o.b.log.Info("redisbroker: Redis reachable again; messages between nodes resumed",
			"node", o.b.node, "down_for", time.Since(o.since).Round(time.Millisecond),
			"failed_commands", cmd.failures.Swap(0), "failed_reads", sub.failures.Swap(0))
	}
}
