package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

var _ hub.Broker = (*Broker)(nil)

// Broker carries a hub.Hub's rooms across processes over Redis pub/sub.
// It implements hub.Broker; create one per Hub with New and put it in
// hub.Options.Broker. Its methods are safe for concurrent use.
type Broker struct {
	client redis.UniversalClient
	opts   Options
	log    *slog.Logger
	tag    string // "{prefix}:", the start of every key and channel

	// Set by Open, read-only afterwards.
	node    string
	inst    string // this Open's presence instance: node names may be reused
	deliver func(hub.Envelope)
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	ready   chan struct{} // closed at the first subscription confirmation

	mode atomic.Int32 // modeUnknown until resolved, then modeClassic or modeSharded

	// mu guards what follows. It is only held for memory work: never
	// across a call to Redis or to deliver. The Hub calls Subscribe and
	// Unsubscribe with its own lock held, so the order is hub lock, then
	// mu.
	mu     sync.Mutex
	state  int
	want   map[string]struct{} // channels this node should be subscribed to
	ps     *redis.PubSub       // the one subscription connection; owned by the subscriber
	redo   bool                // the receiver asks for a new PubSub
	unsubs map[string]int      // unsubscribes sent and not yet confirmed
	fresh  map[string]struct{} // channels subscribed anew: the receiver resets their numbering at the confirmation
	pres   presence            // local members and what Redis has not been told yet
	view   view                // other nodes' members this node's Hub was told of
	calls  sync.WaitGroup      // Members calls in flight; Add under mu while open

	subKick   chan struct{} // cap 1: want or redo changed
	psChanged chan struct{} // cap 1: ps was replaced
	presKick  chan struct{} // cap 1: presence is dirty, or a heartbeat is due now
	pubq      chan *pubReq  // bounded by pubQueue; see Publish

	// History. notes and subAt are guarded by mu; hist and check are
	// owned by the receiver goroutine.
	notes   map[string]headNote     // room -> what History returned lately
	subAt   map[string]time.Time    // room -> when Subscribe asked for it, until its confirmation
	hist    map[string]hub.Position // room -> the last message of a room with history delivered
	check   map[string]struct{}     // rooms whose history must be compared with Redis' (after a reconnect)
	histTTL atomic.Int64            // the latest History.TTL given to Append, for epochs History starts

	pubSeq  pubSeqs   // owned by the publisher goroutine
	recvSeq recvSeqs  // owned by the receiver goroutine
	lossLog time.Time // owned by the receiver goroutine: the last warning about lost messages

	deliverMu sync.Mutex // held while calling deliver: one message at a time

	wg sync.WaitGroup // the four goroutines started by Open

	cmdHealth health // publishing, presence and Members: plain commands
	subHealth health // the subscription connection
	outage    outage // logs the two as one
	stats     counters
}

const (
	stateNew = iota
	stateOpen
	stateClosed
)

const (
	modeUnknown = iota
	modeClassic
	modeSharded
)

// New returns a Broker that uses client, which may be a *redis.Client, a
// *redis.ClusterClient, a failover client or anything else implementing
// redis.UniversalClient. The Broker does not close client: the caller
// owns it. A nil opts means the defaults; invalid options panic with a
// "redisbroker: " message. Nothing is sent to Redis until the Hub opens
// the Broker.
func New(client redis.UniversalClient, opts *Options) *Broker {
	if client == nil {
		panic("redisbroker: New: nil client")
	}
	o := opts.withDefaults()
	b := &Broker{
		client:    client,
		opts:      o,
		log:       o.Logger,
		tag:       "{" + o.Prefix + "}:",
		ready:     make(chan struct{}),
		want:      make(map[string]struct{}),
		unsubs:    make(map[string]int),
		fresh:     make(map[string]struct{}),
		subAt:     make(map[string]time.Time),
		hist:      make(map[string]hub.Position),
		check:     make(map[string]struct{}),
		subKick:   make(chan struct{}, 1),
		psChanged: make(chan struct{}, 1),
		presKick:  make(chan struct{}, 1),
		pubq:      make(chan *pubReq, pubQueue),
	}
	b.pres.init()
	b.histTTL.Store(int64(defaultHistoryTTL))
	b.cmdHealth = health{b: b, path: "commands", onDown: b.presKick}
	b.subHealth = health{b: b, path: "subscription"}
	b.outage.b = b
	return b
}

// Open starts the broker for the node named node: it implements
// hub.Broker and is called by hub.New. It starts the broker's goroutines
// and waits up to Options.Timeout for the subscription connection. If
// Redis cannot be reached in that time, Open returns an error wrapping
// ErrUnavailable, but the broker keeps trying in the background and
// works as soon as Redis answers.
func (b *Broker) Open(node string, deliver func(hub.Envelope)) error {
	if node == "" || deliver == nil {
		return fmt.Errorf("redisbroker: Open needs a node name and a deliver function")
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
	b.want[b.nodeChannel(node)] = struct{}{}
	b.mu.Unlock()

	// Each goroutine is owned by the Broker and ends when Close cancels
	// b.ctx; Close waits for all four.
	b.wg.Add(4)
	go b.runSubscriber() // owns the PubSub: creates it, applies want
	go b.runReceiver()   // reads the PubSub, calls deliver, detects losses
	go b.runPublisher()  // drains pubq into pipelined PUBLISHes
	go b.runPresence()   // writes presence changes, heartbeats
	kick(b.subKick)

	t := time.NewTimer(b.opts.Timeout)
	defer t.Stop()
	select {
	case <-b.ready:
		return nil
	case <-b.ctx.Done():
		return ErrClosed
	case <-t.C:
		return fmt.Errorf("%w: not subscribed within %v (retrying in the background)", ErrUnavailable, b.opts.Timeout)
	}
}

// Close stops the broker: it ends its goroutines and its subscription
// connection, and removes this node's presence from Redis, publishing a
// leave for each of its members to the other nodes (bounded by
// Options.Timeout; skipped while Redis is known to be unreachable, since
// the entries expire by themselves within Options.PresenceTTL). It does
// not close the Redis client. Close is idempotent; the Hub calls it from
// Shutdown.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.state != stateOpen {
		b.state = stateClosed
		b.mu.Unlock()
		return nil
	}
	b.state = stateClosed
	ps := b.ps
	b.mu.Unlock()

	b.cancel()
	if ps != nil {
		ps.Close() // unblocks the receiver; the subscriber closes any later one
	}
	b.wg.Wait()
	b.calls.Wait()
	return b.removePresence()
}

// Subscribe records that this node has members in room; implements
// hub.Broker. It never blocks: the subscriber goroutine applies it, and
// go-redis applies it again after every reconnect.
func (b *Broker) Subscribe(room string) {
	b.mu.Lock()
	if b.state != stateClosed {
		ch := b.roomChannel(room)
		if _, ok := b.want[ch]; !ok {
			b.subAt[room] = time.Now()
		}
		b.want[ch] = struct{}{}
	}
	b.mu.Unlock()
	kick(b.subKick)
}

// Unsubscribe records that this node has no members left in room;
// implements hub.Broker. It never blocks.
func (b *Broker) Unsubscribe(room string) {
	b.mu.Lock()
	delete(b.want, b.roomChannel(room))
	delete(b.subAt, room)
	delete(b.view.rooms, room)
	b.mu.Unlock()
	kick(b.subKick)
}

// Node returns the node name the broker was opened with ("" before Open).
func (b *Broker) Node() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.node
}

// PubSubMode returns the pub/sub flavour in use: ClassicPubSub or
// ShardedPubSub, or AutoPubSub while it is not decided yet (a cluster
// client that has not reached Redis).
func (b *Broker) PubSubMode() PubSubMode {
	switch b.mode.Load() {
	case modeClassic:
		return ClassicPubSub
	case modeSharded:
		return ShardedPubSub
	}
	return AutoPubSub
}

// Key and channel names. The prefix in braces is a Redis Cluster hash
// tag: every key and channel of one application hashes to the same slot,
// so multi-key commands and one sharded subscription connection work.
func (b *Broker) roomChannel(room string) string { return b.tag + "r:" + room }
func (b *Broker) nodeChannel(node string) string { return b.tag + "n:" + node }
func (b *Broker) roomSetKey(room string) string  { return b.tag + "pr:" + room }
func (b *Broker) connKey(connID string) string   { return b.tag + "c:" + connID }
func (b *Broker) memberKey(inst, room string) string {
	// inst is base64url: it holds no ':', so the key is unambiguous.
	return b.tag + "pm:" + inst + ":" + room
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
