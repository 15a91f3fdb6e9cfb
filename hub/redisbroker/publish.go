package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

const (
	pubQueue = 1024 // Publish calls waiting for the publisher
	pubBatch = 256  // messages per pipeline

	// settle is how long Publish keeps failing after an outage: longer
	// than a receiver's longest wait between two reconnection attempts.
	settle = 2 * backoffMax
)

// pubReq is one Publish call handed to the publisher goroutine.
type pubReq struct {
	channel string       // room channel, or "" when target is set
	target  string       // connection ID to route to through its node's channel
	typ     byte         // wireText or wireBinary
	payload []byte       // newUnsealed: the publisher numbers and seals it
	app     *appendArgs  // Append: run appendScript instead (payload unused)
	state   atomic.Int32 // reqQueued, then reqClaimed by the publisher or reqAbandoned by the caller
	done    chan error   // cap 1: the publisher's answer
}

const (
	reqQueued = iota
	reqClaimed
	reqAbandoned
)

// Publish sends e to the other nodes; implements hub.Broker. A room
// message goes to the room's channel; a message with Target is routed to
// the channel of the node that holds that connection (ErrNoSuchConn if
// none does).
//
// Publish returns within Options.Timeout (or ctx, if shorter) whatever
// Redis does: with an error wrapping ErrUnavailable when Redis refused or
// failed the command, ErrTimeout when it did not answer in time. Either
// means members on other nodes did not get the message (a late answer
// aside), and is counted in Stats.PublishErrors. Publish fails at once
// with ErrUnavailable, without trying Redis, while a command has failed
// or this node's subscription is down, and for 500ms after both are
// back: the other nodes may not be listening yet (see the package doc,
// When Redis is down). Messages published by one node reach every other
// node at most once, in the order Publish was called.
func (b *Broker) Publish(ctx context.Context, e hub.Envelope) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	if e.Origin == "" {
		e.Origin = b.node
	}
	if (e.Room == "") == (e.Target == "") {
		return fmt.Errorf("redisbroker: Publish: exactly one of Envelope.Room and Envelope.Target must be set")
	}
	if b.mode.Load() == modeUnknown {
		return b.pubFailed(fmt.Errorf("%w: Redis has not been reached yet", ErrUnavailable))
	}
	if err := b.unavailable(); err != nil {
		return b.pubFailed(err)
	}
	r := &pubReq{
		typ:     wireType(e.Type),
		payload: newUnsealed(e),
		done:    make(chan error, 1),
	}
	if e.Target != "" {
		r.target = e.Target
	} else {
		r.channel = b.roomChannel(e.Room)
	}

	return b.submit(ctx, r)
}

// submit hands r to the publisher and waits for its answer, within
// Options.Timeout.
func (b *Broker) submit(ctx context.Context, r *pubReq) error {
	// One timer rather than context.WithTimeout: it is the cheaper of
	// the two, and Publish is on every broadcast's path.
	t := time.NewTimer(b.opts.Timeout)
	defer t.Stop()
	select {
	case b.pubq <- r:
	case <-t.C:
		// The queue stayed full: the publisher is stuck on Redis.
		return b.pubFailed(ErrTimeout)
	case <-ctx.Done():
		return b.pubFailed(fmt.Errorf("redisbroker: Publish: %w", ctx.Err()))
	case <-b.ctx.Done():
		return ErrClosed
	}
	select {
	case err := <-r.done:
		if err != nil {
			return b.pubFailed(err)
		}
		return nil
	case <-t.C:
		return b.pubAbandon(r, ErrTimeout)
	case <-ctx.Done():
		return b.pubAbandon(r, fmt.Errorf("redisbroker: Publish: %w", ctx.Err()))
	case <-b.ctx.Done():
		return b.pubAbandon(r, ErrClosed)
	}
}

// pubAbandon gives up waiting for r. If the publisher has not taken it
// yet it never will; if it has, its answer may still be on the way.
func (b *Broker) pubAbandon(r *pubReq, err error) error {
	if !r.state.CompareAndSwap(reqQueued, reqAbandoned) {
		select {
		case perr := <-r.done: // answered in the meantime
			if perr == nil {
				return nil
			}
			err = perr
		default:
		}
	}
	return b.pubFailed(err)
}

func (b *Broker) pubFailed(err error) error {
	if errors.Is(err, ErrNoSuchConn) {
		b.stats.noSuchConn.Add(1)
	} else if !errors.Is(err, ErrClosed) {
		b.stats.publishErrors.Add(1)
	}
	return err
}

// runPublisher publishes what Publish queues, in order, batching whatever
// has accumulated into one pipeline: one round trip for many messages
// when broadcasts are frequent. It is owned by the Broker and ends when
// Close cancels b.ctx, failing what is still queued with ErrClosed.
func (b *Broker) runPublisher() {
	defer b.wg.Done()
	batch := make([]*pubReq, 0, pubBatch)
	for {
		select {
		case <-b.ctx.Done():
			for {
				select {
				case r := <-b.pubq:
					r.done <- ErrClosed
				default:
					return
				}
			}
		case r := <-b.pubq:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < pubBatch {
			select {
			case r := <-b.pubq:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// Claim what the callers still wait for; the others already
		// returned an error and must not be published behind their back.
		n := 0
		for _, r := range batch {
			if r.state.CompareAndSwap(reqQueued, reqClaimed) {
				batch[n] = r
				n++
			}
		}
		err := b.unavailable()
		if b.ctx.Err() != nil {
			// Closed meanwhile (select picks at random among the ready
			// cases): a command now would be cut short, after go-redis
			// had started dialing for it.
			err = ErrClosed
		}
		if err != nil {
			// Queued before the outage was known: fail them now too.
			for _, r := range batch[:n] {
				r.done <- err
			}
		} else {
			b.publishBatch(batch[:n])
		}
		clear(batch)
	}
}

// publishBatch sends batch in one pipeline and answers each request. A
// batch with messages to connections first looks up their nodes, in a
// pipeline of its own.
func (b *Broker) publishBatch(batch []*pubReq) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()

	if err := b.route(ctx, batch); err != nil {
		for _, r := range batch {
			if r.target != "" {
				r.done <- err
			}
		}
	}
	sharded := b.mode.Load() == modeSharded
	pipe := b.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(batch))
	var apps []*redis.Cmd // Append's scripts, by index in batch
	now := time.Now()
	for i, r := range batch {
		if r.channel == "" {
			continue // answered by route
		}
		if r.app != nil {
			if apps == nil {
				apps = make([]*redis.Cmd, len(batch))
			}
			apps[i] = b.runAppend(ctx, pipe, r, sharded, false)
			continue
		}
		// Numbered here, in the order Redis runs them. A number is
		// never used twice: should go-redis send this pipeline again,
		// the receivers recognise the copies and drop them.
		msg := sealEnvelope(r.payload, r.typ, b.pubSeq.next(r.channel, now))
		if sharded {
			cmds[i] = pipe.SPublish(ctx, r.channel, msg)
		} else {
			cmds[i] = pipe.Publish(ctx, r.channel, msg)
		}
	}
	if pipe.Len() == 0 {
		return
	}
	_, err := pipe.Exec(ctx)
	if apps != nil && err != nil && isReply(err) {
		err = b.retryAppends(ctx, batch, apps, sharded)
	}
	if err != nil && !isReply(err) {
		b.cmdHealth.fail(err)
	} else {
		b.cmdHealth.ok()
	}
	for i, r := range batch {
		if apps != nil && apps[i] != nil {
			b.appended(r, apps[i])
			continue
		}
		c := cmds[i]
		if c == nil {
			continue
		}
		if err := c.Err(); err != nil {
			r.done <- classify(err)
			continue
		}
		b.stats.published.Add(1)
		r.done <- nil
	}
}

// route sets the channel of every request addressed to a connection to
// the channel of the node holding it, or answers it with ErrNoSuchConn.
// An error means the lookup itself failed; the caller answers those
// requests.
func (b *Broker) route(ctx context.Context, batch []*pubReq) error {
	var pipe redis.Pipeliner
	gets := make([]*redis.StringCmd, len(batch))
	for i, r := range batch {
		if r.target == "" {
			continue
		}
		if pipe == nil {
			pipe = b.client.Pipeline()
		}
		gets[i] = pipe.Get(ctx, b.connKey(r.target))
	}
	if pipe == nil {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		b.cmdHealth.fail(err)
		return classify(err)
	}
	// A connection's key outlives a node that crashed (presence.go):
	// it counts only while its instance's key is alive.
	alive := make([]*redis.IntCmd, len(batch))
	var check redis.Pipeliner
	for i, g := range gets {
		if g == nil {
			continue
		}
		v, err := g.Result()
		switch {
		case errors.Is(err, redis.Nil):
			batch[i].done <- ErrNoSuchConn
		case err != nil:
			batch[i].done <- classify(err)
		default:
			inst, node, ok := strings.Cut(v, "|")
			if !ok {
				node = v // the value a node before the instance was named writes
			}
			batch[i].channel = b.nodeChannel(node)
			if ok {
				if check == nil {
					check = b.client.Pipeline()
				}
				alive[i] = check.Exists(ctx, b.aliveKey(inst))
			}
		}
	}
	if check == nil {
		return nil
	}
	if _, err := check.Exec(ctx); err != nil {
		b.cmdHealth.fail(err)
		for i, a := range alive {
			if a != nil {
				batch[i].channel = ""
				batch[i].done <- classify(err)
			}
		}
		return nil
	}
	for i, a := range alive {
		if a != nil && a.Val() == 0 {
			batch[i].channel = ""
			batch[i].done <- ErrNoSuchConn
		}
	}
	return nil
}

// classify turns a go-redis error into the broker's: ErrTimeout when
// Redis did not answer in time, ErrUnavailable otherwise.
func classify(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// runAppend queues appendScript for r on pipe: EVALSHA, or with eval
// EVAL, which sends the script itself.
func (b *Broker) runAppend(ctx context.Context, pipe redis.Pipeliner, r *pubReq, sharded, eval bool) *redis.Cmd {
	a := r.app
	sh := "0"
	if sharded {
		sh = "1"
	}
	keys := append(b.historyKeys(a.room), r.channel)
	args := []any{randomID(), a.size, a.ttl, a.head, a.body, sh}
	if eval {
		return appendScript.Eval(ctx, pipe, keys, args...)
	}
	return appendScript.EvalSha(ctx, pipe, keys, args...)
}

// retryAppends runs again, with EVAL, the appends of batch that Redis
// refused with NOSCRIPT (its script cache is empty after a restart). It
// returns the error of that second pipeline, or nil.
func (b *Broker) retryAppends(ctx context.Context, batch []*pubReq, apps []*redis.Cmd, sharded bool) error {
	var pipe redis.Pipeliner
	for i, c := range apps {
		if c == nil || !redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			continue
		}
		if pipe == nil {
			pipe = b.client.Pipeline()
		}
		apps[i] = b.runAppend(ctx, pipe, batch[i], sharded, true)
	}
	if pipe == nil {
		return nil
	}
	_, err := pipe.Exec(ctx)
	return err
}

// appended answers an Append request from its script's reply.
func (b *Broker) appended(r *pubReq, c *redis.Cmd) {
	v, err := c.Slice()
	if err != nil {
		if isReply(err) {
			r.done <- fmt.Errorf("redisbroker: Append: Redis refused it: %w", err)
		} else {
			r.done <- classify(err)
		}
		return
	}
	var (
		epoch string
		off   int64
	)
	if len(v) == 2 {
		epoch, _ = v[0].(string)
		off, _ = v[1].(int64)
	}
	if epoch == "" || off < 1 {
		r.done <- fmt.Errorf("%w: Append's script answered %v", ErrMalformed, v)
		return
	}
	r.app.pos = hub.Position{Epoch: epoch, Offset: uint64(off)}
	b.stats.appended.Add(1)
	r.done <- nil
}
