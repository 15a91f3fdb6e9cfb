package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexio-go/nexio/hub"
)

var (
	_ hub.Broker        = (*Broker)(nil)
	_ hub.HistoryBroker = (*Broker)(nil)
)

// Broker carries a hub.Hub's rooms across processes over NATS, and keeps
// presence and the history of rooms in JetStream. It implements
// hub.Broker and hub.HistoryBroker; create one per Hub with New and put it
// in hub.Options.Broker. Its methods are safe for concurrent use.
type Broker struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	log  *slog.Logger

	// Subject, stream and bucket names; see doc.go.
	roomSubj, nodeSubj, histSubj string // prefixes, each ending in '.'
	streamName                   string
	presBucket, nodeBucket       string

	// Set by Open, read-only afterwards.
	node    string
	inst    string // this Open's instance: node names may be reused
	deliver func(hub.Envelope)
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	msgs    chan *nats.Msg    // both subscriptions feed it, in arrival order
	events  chan hub.Envelope // presence events from the watcher
	status  chan nats.Status  // connection status changes
	subs    []*nats.Subscription

	// mu guards what follows. It is only held for memory work: never
	// across a call to NATS or to deliver. The Hub calls Subscribe,
	// AddMember and RemoveMember with its own lock held, so the order is
	// hub lock, then mu.
	mu    sync.Mutex
	state int
	rooms map[string]uint64 // subscribed rooms -> generation
	gen   uint64
	pres  presence

	presKick chan struct{} // cap 1: presence is dirty
	rebeat   chan struct{} // cap 1: write the heartbeat now (after a reconnect)
	beating  atomic.Bool   // a heartbeat was written: members may be
	reconn   chan struct{} // cap 1: the receiver should catch up after a reconnect
	rewatch  chan struct{} // cap 1: the watcher should start again
	resync   chan struct{} // cap 1: the presence writer should rewrite everything

	flush flusher
	hist  history

	wg    sync.WaitGroup // the goroutines started by Open
	calls sync.WaitGroup // Members, History and Append calls in flight

	down atomic.Bool // NATS is known to be unreachable

	// watched is the newest revision of the presence bucket that the
	// presence watcher delivered; the heartbeat's watchdog reads it.
	watched       atomic.Uint64
	watchStarting atomic.Bool // the watcher is reading the bucket's initial values
	purging       atomic.Bool // a purge of delete markers is running
	stats         counters
}

const (
	stateNew = iota
	stateOpen
	stateClosed
)

// msgBuffer is how many messages may wait between the NATS connection's
// reader and the delivering goroutine before the subscription drops
// them (counted in Stats.Dropped).
const msgBuffer = 1 << 16

// New returns a Broker that uses nc. The Broker does not close nc: the
// caller owns it. nc must not have been made with nats.NoEcho: a node
// hears its own appended messages come back, as every node does. A nil
// opts means the defaults; invalid options panic with a "natsbroker: "
// message. Nothing is sent to NATS until the Hub opens the Broker.
func New(nc *nats.Conn, opts *Options) *Broker {
	if nc == nil {
		panic("natsbroker: New: nil connection")
	}
	o := opts.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(fmt.Sprintf("natsbroker: New: %v", err)) // only for a nil connection
	}
	b := &Broker{
		nc:         nc,
		js:         js,
		opts:       o,
		log:        o.Logger,
		roomSubj:   o.Prefix + ".r.",
		nodeSubj:   o.Prefix + ".n.",
		histSubj:   o.Prefix + ".h.",
		streamName: o.Prefix + "_history",
		presBucket: o.Prefix + "_presence",
		nodeBucket: o.Prefix + "_nodes",
		rooms:      make(map[string]uint64),
		presKick:   make(chan struct{}, 1),
		rebeat:     make(chan struct{}, 1),
		reconn:     make(chan struct{}, 1),
		rewatch:    make(chan struct{}, 1),
		resync:     make(chan struct{}, 1),
	}
	b.pres.init()
	b.flush.b, b.flush.kick = b, make(chan struct{}, 1)
	b.hist.init()
	return b
}

// Open starts the broker for the node named node: it implements
// hub.Broker and is called by hub.New. It subscribes to the rooms'
// wildcard subject and to this node's own subject, starts the broker's
// goroutines and waits up to Options.Timeout for NATS to confirm the
// subscriptions. If NATS cannot be reached in that time, Open returns an
// error wrapping ErrUnavailable, but the broker keeps working in the
// background (the NATS client resubscribes by itself) and works as soon
// as NATS answers.
func (b *Broker) Open(node string, deliver func(hub.Envelope)) error {
	if node == "" || deliver == nil {
		return fmt.Errorf("natsbroker: Open needs a node name and a deliver function")
	}
	b.mu.Lock()
	switch b.state {
	case stateOpen:
		b.mu.Unlock()
		return ErrAlreadyOpen
	case stateClosed:
		b.mu.Unlock()
		return ErrClosed
	}
	b.state = stateOpen
	b.node, b.inst, b.deliver = node, newInstance(), deliver
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.Unlock()

	b.msgs = make(chan *nats.Msg, msgBuffer)
	b.events = make(chan hub.Envelope, 1024)
	b.status = b.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	var err error
	for _, subj := range []string{b.roomSubj + "*", b.nodeSubj + token(node)} {
		var s *nats.Subscription
		s, err = b.nc.ChanSubscribe(subj, b.msgs)
		if err != nil {
			break
		}
		b.subs = append(b.subs, s)
	}
	if err == nil && b.nc.Status() != nats.CONNECTED {
		b.down.Store(true)
	}

	// Each goroutine is owned by the Broker and ends when Close cancels
	// b.ctx; Close waits for them.
	b.wg.Add(6)
	go b.runReceiver()  // calls deliver, one message at a time
	go b.runStatus()    // follows the connection, logs outages
	go b.runPresence()  // writes members
	go b.runHeartbeat() // writes the heartbeat, sweeps dead nodes' members
	go b.runWatcher()   // reads every node's presence from JetStream
	go b.flush.run()    // confirms Publish with one PING for many
	if err != nil {
		return fmt.Errorf("%w: subscribing: %w", ErrUnavailable, err)
	}
	if err := b.nc.FlushTimeout(b.opts.Timeout); err != nil {
		return fmt.Errorf("%w: not subscribed within %v (NATS retries in the background): %w", ErrUnavailable, b.opts.Timeout, err)
	}
	return nil
}

// Close stops the broker: it ends its goroutines and subscriptions, and
// removes this node's presence from JetStream (bounded by
// Options.Timeout; skipped while NATS is unreachable, since a node's
// members are swept by the others once its heartbeat expires). It does
// not close the NATS connection. Close is idempotent; the Hub calls it
// from Shutdown.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.state != stateOpen {
		b.state = stateClosed
		b.mu.Unlock()
		return nil
	}
	b.state = stateClosed
	b.mu.Unlock()

	for _, s := range b.subs {
		s.Unsubscribe()
	}
	b.cancel()
	b.nc.RemoveStatusListener(b.status)
	b.wg.Wait()
	b.calls.Wait()
	return b.removePresence()
}

// Subscribe records that this node has members in room; implements
// hub.Broker. It never blocks: the node already receives every room of
// its Prefix on one wildcard subscription, and keeps those it has
// members in.
func (b *Broker) Subscribe(room string) {
	b.mu.Lock()
	if b.state != stateClosed {
		b.gen++
		b.rooms[room] = b.gen
	}
	b.mu.Unlock()
}

// Unsubscribe records that this node has no members left in room;
// implements hub.Broker. It never blocks.
func (b *Broker) Unsubscribe(room string) {
	b.mu.Lock()
	delete(b.rooms, room)
	b.mu.Unlock()
}

// subscribed returns the generation of room's subscription, 0 if none.
func (b *Broker) subscribed(room string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rooms[room]
}

// Node returns the node name the broker was opened with ("" before Open).
func (b *Broker) Node() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.node
}

// Publish sends e to the other nodes; implements hub.Broker. A room's
// message goes to the room's subject, a message for a connection
// (Target) to the subject of the node that holds it, found in this
// node's copy of the presence bucket. Publish returns once NATS has
// confirmed it received the message (one PING answers for every Publish
// in flight), within Options.Timeout: an error wrapping ErrUnavailable
// at once while the connection is down, ErrTimeout when NATS did not
// answer in time, ErrNoSuchConn when no node holds the Target.
func (b *Broker) Publish(ctx context.Context, e hub.Envelope) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	e.Origin = b.node
	e.Position = hub.Position{}
	e.Presence = nil
	var subj string
	if e.Target != "" {
		node, ok := b.pres.nodeOf(e.Target)
		if !ok {
			return fmt.Errorf("%w: %q", ErrNoSuchConn, e.Target)
		}
		e.Room = ""
		subj = b.nodeSubj + token(node)
	} else {
		subj = b.roomSubj + token(e.Room)
	}
	err := b.send(ctx, subj, appendEnvelope(nil, e, 0), true)
	if err != nil {
		b.stats.publishErrors.Add(1)
		return err
	}
	b.stats.published.Add(1)
	return nil
}

// send publishes data on subj; with confirm, it waits for NATS to
// confirm it, within Options.Timeout.
func (b *Broker) send(ctx context.Context, subj string, data []byte, confirm bool) error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: connection is %v", ErrUnavailable, st)
	}
	if err := b.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !confirm {
		return nil
	}
	return b.flush.wait(ctx)
}

func (b *Broker) isOpen() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateNew:
		return ErrNotOpen
	case stateClosed:
		return ErrClosed
	}
	return nil
}

// begin registers a call that Close must wait for.
func (b *Broker) begin() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateNew:
		return ErrNotOpen
	case stateClosed:
		return ErrClosed
	}
	b.calls.Add(1)
	return nil
}

// bounded returns ctx bounded by Options.Timeout and by Close.
func (b *Broker) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	stop := context.AfterFunc(b.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// natsErr wraps an error of the NATS client in ErrTimeout or
// ErrUnavailable.
func natsErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// runStatus follows the connection: it logs one warning per outage and
// one line at its end, and after a reconnect asks the other goroutines
// to catch up.
func (b *Broker) runStatus() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case st, ok := <-b.status:
			if !ok {
				return
			}
			switch st {
			case nats.CONNECTED:
				if b.down.Swap(false) {
					b.stats.reconnects.Add(1)
					b.log.Info("natsbroker: NATS reachable again", "node", b.node)
					kick(b.reconn)
					kick(b.rewatch)
					kick(b.rebeat)
					kick(b.resync)
				}
			case nats.CLOSED:
				b.down.Store(true)
				b.log.Warn("natsbroker: NATS connection closed; rooms stay local", "node", b.node)
			default:
				b.beating.Store(false) // members wait for the next heartbeat
				if !b.down.Swap(true) {
					b.stats.outages.Add(1)
					b.log.Warn("natsbroker: NATS unreachable; rooms stay local until it is back", "node", b.node, "status", st.String())
				}
			}
		}
	}
}

// flusher confirms Publish calls: one PING/PONG round trip answers for
// every message published before it.
type flusher struct {
	b       *Broker
	mu      sync.Mutex
	waiters []chan error
	kick    chan struct{} // cap 1
}

func (f *flusher) wait(ctx context.Context) error {
	ch := make(chan error, 1)
	f.mu.Lock()
	f.waiters = append(f.waiters, ch)
	f.mu.Unlock()
	kick(f.kick)
	t := time.NewTimer(f.b.opts.Timeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return natsErr("publish", ctx.Err())
	case <-t.C:
		return fmt.Errorf("%w: no answer within %v", ErrTimeout, f.b.opts.Timeout)
	}
}

func (f *flusher) run() {
	defer f.b.wg.Done()
	for {
		select {
		case <-f.b.ctx.Done():
			f.answer(ErrClosed)
			return
		case <-f.kick:
		}
		f.mu.Lock()
		ws := f.waiters
		f.waiters = nil
		f.mu.Unlock()
		if len(ws) == 0 {
			continue
		}
		var err error
		if ferr := f.b.nc.FlushTimeout(f.b.opts.Timeout); ferr != nil {
			err = natsErr("confirming publish", ferr)
		}
		for _, w := range ws {
			w <- err
		}
	}
}

func (f *flusher) answer(err error) {
	f.mu.Lock()
	ws := f.waiters
	f.waiters = nil
	f.mu.Unlock()
	for _, w := range ws {
		w <- err
	}
}

// token turns a name (a room, a node, a connection ID) into one subject
// token or key part: unpadded base64url, which holds no '.', '*', '>' or
// space; "_" for the empty name, which base64url never produces alone.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func untoken(t string) (string, bool) {
	if t == "_" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	return string(b), err == nil
}

func newInstance() string {
	var p [9]byte
	rand.Read(p[:])
	return base64.RawURLEncoding.EncodeToString(p[:])
}

// kick wakes a goroutine waiting on c without ever blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
