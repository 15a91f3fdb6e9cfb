package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

// The subscription side: one redis.PubSub (one connection) per Broker,
// whatever the number of rooms and members. Two goroutines share it, as
// go-redis intends: the subscriber sends SUBSCRIBE and UNSUBSCRIBE, the
// receiver blocks reading messages.
//
// Reconnection is go-redis' own: when the connection breaks, the next
// read dials again and resubscribes every channel the PubSub holds. The
// subscriber calls Subscribe and Unsubscribe for every change even while
// Redis is down, because go-redis records the channel set before it tries
// to write, so the set it restores is always the one the Hub wants. The
// receiver paces the retries (backoff), counts and logs the outage, and
// detects a dead connection with PING. When Redis itself drops a
// subscription (a sharded channel's slot moved in a cluster) or answers
// MOVED, the receiver asks the subscriber for a new PubSub, which routes
// to the slot's current owner.

// runSubscriber owns b.ps: it creates it, replaces it when asked, and
// applies changes of b.want to it. It is owned by the Broker and ends
// when Close cancels b.ctx.
func (b *Broker) runSubscriber() {
	defer b.wg.Done()
	var (
		ps   *redis.PubSub
		have map[string]struct{} // what ps has been told
		bo   backoff
	)
	for {
		b.mu.Lock()
		redo := ps == nil || b.redo
		b.mu.Unlock()
		if redo {
			np, chans, err := b.newPubSub(have)
			if err != nil {
				b.subHealth.fail(err)
				if !bo.wait(b.ctx) {
					return
				}
				continue
			}
			bo.reset()
			ps, have = np, chans
		} else {
			b.applyWant(ps, have)
		}
		select {
		case <-b.ctx.Done():
			return
		case <-b.subKick:
		}
	}
}

// newPubSub creates a PubSub subscribed to every wanted channel and makes
// it b.ps, closing the previous one, which had been told prev.
func (b *Broker) newPubSub(prev map[string]struct{}) (*redis.PubSub, map[string]struct{}, error) {
	if b.mode.Load() == modeUnknown {
		if err := b.resolveMode(); err != nil {
			return nil, nil, err
		}
	}
	b.mu.Lock()
	chans := make([]string, 0, len(b.want))
	have := make(map[string]struct{}, len(b.want))
	for ch := range b.want {
		chans = append(chans, ch)
		have[ch] = struct{}{}
		if _, ok := prev[ch]; !ok {
			// New, not carried over from the previous PubSub: its
			// numbering starts afresh (see seq.go).
			b.fresh[ch] = struct{}{}
		}
	}
	b.mu.Unlock()

	var np *redis.PubSub
	if b.mode.Load() == modeSharded {
		np = b.client.SSubscribe(b.ctx)
	} else {
		np = b.client.Subscribe(b.ctx)
	}
	// An error here (Redis down) is fine: the PubSub has recorded the
	// channels and the receiver's next read connects and subscribes.
	if err := b.subscribe(np, chans); err != nil {
		b.log.Debug("redisbroker: subscribe failed; the receiver retries", "error", err)
	}

	b.mu.Lock()
	if b.state == stateClosed {
		b.mu.Unlock()
		np.Close()
		return nil, nil, ErrClosed
	}
	old := b.ps
	b.ps, b.redo = np, false
	clear(b.unsubs)
	b.mu.Unlock()
	if old != nil {
		old.Close()
	}
	kick(b.psChanged)
	return np, have, nil
}

// applyWant subscribes ps to the channels wanted and not yet subscribed,
// and unsubscribes it from those no longer wanted.
func (b *Broker) applyWant(ps *redis.PubSub, have map[string]struct{}) {
	var add, del []string
	b.mu.Lock()
	for ch := range b.want {
		if _, ok := have[ch]; !ok {
			add = append(add, ch)
			have[ch] = struct{}{}
			b.fresh[ch] = struct{}{}
		}
	}
	for ch := range have {
		if _, ok := b.want[ch]; !ok {
			del = append(del, ch)
			delete(have, ch)
			b.unsubs[ch]++ // its confirmation is expected, not a drop
		}
	}
	b.mu.Unlock()
	if len(add) > 0 {
		if err := b.subscribe(ps, add); err != nil {
			b.log.Debug("redisbroker: subscribe failed; applied at reconnect", "error", err)
		}
	}
	if len(del) > 0 {
		var err error
		if b.mode.Load() == modeSharded {
			err = ps.SUnsubscribe(b.ctx, del...)
		} else {
			err = ps.Unsubscribe(b.ctx, del...)
		}
		if err != nil {
			b.log.Debug("redisbroker: unsubscribe failed; applied at reconnect", "error", err)
		}
	}
}

func (b *Broker) subscribe(ps *redis.PubSub, chans []string) error {
	if b.mode.Load() == modeSharded {
		return ps.SSubscribe(b.ctx, chans...)
	}
	return ps.Subscribe(b.ctx, chans...)
}

// resolveMode decides between classic and sharded pub/sub. AutoPubSub
// asks a cluster whether it knows SPUBLISH (Redis 7.0+).
func (b *Broker) resolveMode() error {
	mode := modeClassic
	switch b.opts.PubSub {
	case ShardedPubSub:
		mode = modeSharded
	case AutoPubSub:
		if _, ok := b.client.(*redis.ClusterClient); ok {
			ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
			defer cancel()
			info, err := b.client.Do(ctx, "COMMAND", "INFO", "SPUBLISH").Slice()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			if len(info) > 0 && info[0] != nil {
				mode = modeSharded
			}
		}
	}
	b.mode.Store(int32(mode))
	return nil
}

// runReceiver reads the subscription connection and hands each message
// from another node to the Hub, in the order Redis sent them. It is owned
// by the Broker and ends when Close cancels b.ctx and closes b.ps.
func (b *Broker) runReceiver() {
	defer b.wg.Done()
	var (
		ps        *redis.PubSub
		pinged    bool      // a health-check PING is unanswered
		lost      bool      // the connection failed since the last confirmation
		recheck   bool      // compare the rooms with history with Redis at the next confirmation
		started   bool      // the first subscription was confirmed
		heard     time.Time // the last time the connection answered, or a PING was sent
		nextCheck time.Time // when b.check may be tried again
		bo        backoff
	)
	for {
		cur := b.currentPS()
		if cur == nil {
			select {
			case <-b.ctx.Done():
				return
			case <-b.psChanged:
				continue
			}
		}
		if cur != ps {
			if ps != nil {
				recheck = true // messages may have been lost in the switch
			}
			ps, pinged, heard = cur, false, time.Now()
		}
		wait := b.opts.Heartbeat
		if len(b.check) > 0 {
			// A comparison failed: retry it after checkDelay even if
			// nothing arrives meanwhile.
			wait = min(wait, max(time.Until(nextCheck), time.Millisecond))
		}
		msg, err := ps.ReceiveTimeout(b.ctx, wait)
		now := time.Now()
		if b.recvSeq.due(now) {
			b.sweepSeqs(now)
		}
		if isTimeout(err) && len(b.check) > 0 && !now.Before(nextCheck) && !lost {
			if !b.runChecks(now) {
				nextCheck = now.Add(checkDelay)
			}
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			if b.currentPS() != ps {
				continue // replaced by the subscriber
			}
			if isTimeout(err) && now.Sub(heard) < b.opts.Heartbeat {
				continue // a short wait, for a check: not yet a silence
			}
			if isTimeout(err) {
				if !pinged {
					// Quiet for a heartbeat: check the connection. The
					// answer arrives as a Pong.
					pinged, heard = true, now
					if err = ps.Ping(b.ctx); err == nil {
						continue
					}
				} else {
					err = fmt.Errorf("no answer to PING within %v", b.opts.Heartbeat)
					b.requestRedo()
				}
			}
			moved := false
			var rerr redis.Error
			if errors.As(err, &rerr) {
				// Redis refused a subscription: MOVED or ASK while a
				// cluster moves slots, an unknown SSUBSCRIBE on an old
				// server, an ACL. A new PubSub routes afresh.
				if cc, ok := b.client.(*redis.ClusterClient); ok {
					cc.ReloadState(b.ctx)
				}
				b.requestRedo()
				msg := rerr.Error()
				moved = strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
			}
			lost = true
			b.stats.subscribed.Store(false)
			if moved {
				// Routing, not an outage: not worth a warning.
				b.log.Debug("redisbroker: subscription redirected; following the slot", "node", b.node, "error", err)
			} else {
				b.subHealth.fail(err)
			}
			b.mu.Lock()
			clear(b.unsubs) // their confirmations died with the connection
			b.mu.Unlock()
			if !bo.wait(b.ctx) {
				return
			}
			continue
		}
		bo.reset()
		pinged, heard = false, now
		switch m := msg.(type) {
		case *redis.Message:
			b.receive(m, now)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				b.subscribed(m.Channel, now)
				b.stats.subscribed.Store(true)
				if lost || recheck {
					// Every channel is subscribed again (go-redis sends
					// them in one command): what was published while
					// this node could not hear is in the streams.
					recheck = false
					for room := range b.hist {
						b.check[room] = struct{}{}
					}
					nextCheck = now
				}
				if lost {
					lost = false
					b.subHealth.ok()
					b.beatNow() // Redis may have lost presence too
					if started {
						b.stats.reconnects.Add(1)
					}
				}
				if !started {
					started = true
					close(b.ready)
				}
			case "unsubscribe", "sunsubscribe":
				if b.unsubscribed(m.Channel) {
					b.recvSeq.reset(m.Channel)
					if room, ok := b.roomOf(m.Channel); ok {
						delete(b.hist, room)
						delete(b.check, room)
					}
				}
			}
		}
		if len(b.check) > 0 && !now.Before(nextCheck) && !lost {
			// Right after a (re)subscription, or a message: the
			// comparison with Redis runs at once, not after a wait.
			if !b.runChecks(now) {
				nextCheck = now.Add(checkDelay)
			}
		}
	}
}

// receive decodes a message and hands it to the Hub unless this node
// published it or it is a copy of one already handed over.
func (b *Broker) receive(m *redis.Message, now time.Time) {
	wm, err := decodeMessage([]byte(m.Payload))
	if err != nil {
		if b.stats.malformed.Add(1) == 1 {
			b.log.Warn("redisbroker: dropping a message that does not decode (another version, or another publisher, on this prefix?); further ones are only counted",
				"channel", m.Channel, "error", err)
		}
		return
	}
	e := wm.e
	switch {
	case e.Presence != nil:
		if e.Origin != b.node {
			b.presenceChanged(wm)
		}
		return
	case e.Position.Epoch != "":
		// A room with history: this node's own messages come back too,
		// and are delivered in the store's order (hub.HistoryBroker).
		if room, ok := b.roomOf(m.Channel); ok && room == e.Room {
			b.receiveHistory(m.Channel, e, now)
		} else {
			b.stats.malformed.Add(1)
		}
		return
	}
	if e.Origin == b.node {
		return // ours: the Hub served its local members already
	}
	dup, missed := b.recvSeq.check(m.Channel, wm.sq, now)
	if dup {
		b.stats.duplicates.Add(1)
		return
	}
	if missed > 0 {
		b.lost(e.Origin, m.Channel, missed, now)
	}
	b.stats.received.Add(1)
	b.hand(e)
}

// roomOf returns the room of a room channel.
func (b *Broker) roomOf(ch string) (string, bool) {
	rest, ok := strings.CutPrefix(ch, b.tag)
	if !ok {
		return "", false
	}
	return strings.CutPrefix(rest, "r:")
}

// lossLogEvery spaces the warnings about messages that never arrived.
const lossLogEvery = time.Minute

// lost counts messages from origin on ch that never arrived, and says so
// in the log at most once per lossLogEvery.
func (b *Broker) lost(origin, ch string, n uint64, now time.Time) {
	total := b.stats.missed.Add(n)
	if !b.lossLog.IsZero() && now.Sub(b.lossLog) < lossLogEvery {
		return
	}
	b.lossLog = now
	b.log.Warn("redisbroker: messages from another node never arrived (published while this node could not hear them); counted in Stats.Missed, further ones are logged at most once a minute",
		"node", b.node, "from", origin, "channel", ch, "missed", n, "missed_total", total)
}

// subscribed handles a subscribe confirmation: a channel subscribed anew
// (not resubscribed after a reconnection) starts its numbering afresh.
func (b *Broker) subscribed(ch string, now time.Time) {
	room, isRoom := b.roomOf(ch)
	b.mu.Lock()
	_, fresh := b.fresh[ch]
	delete(b.fresh, ch)
	var (
		base  hub.Position
		noted bool
	)
	if fresh && isRoom {
		if at, ok := b.subAt[room]; ok {
			base, noted = b.takeNoteLocked(room, at)
			delete(b.subAt, room)
		}
	}
	b.mu.Unlock()
	if !fresh {
		return
	}
	b.recvSeq.reset(ch)
	if isRoom {
		delete(b.hist, room)
		delete(b.check, room)
		if noted {
			// History told a member of this room where it stands: deliver
			// everything after that, starting with what was published
			// before this subscription took effect.
			b.hist[room] = base
			b.check[room] = struct{}{}
		}
	}
}

// sweepSeqs forgets the numbering of idle streams and of the channels no
// longer wanted.
func (b *Broker) sweepSeqs(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recvSeq.sweep(now, func(ch string) bool {
		_, ok := b.want[ch]
		return ok
	})
	for ch := range b.fresh {
		if _, ok := b.want[ch]; !ok {
			delete(b.fresh, ch) // subscribed and unsubscribed while Redis was away
		}
	}
	b.sweepNotesLocked(now)
}

// unsubscribed handles an unsubscribe confirmation: expected when the
// subscriber asked for it (it reports true), otherwise Redis dropped a
// channel we still want (a sharded channel whose slot moved) and a new
// PubSub is needed.
func (b *Broker) unsubscribed(ch string) bool {
	b.mu.Lock()
	if n := b.unsubs[ch]; n > 0 {
		if n == 1 {
			delete(b.unsubs, ch)
		} else {
			b.unsubs[ch] = n - 1
		}
		b.mu.Unlock()
		return true
	}
	_, wanted := b.want[ch]
	first := wanted && !b.redo // one log line for all the channels dropped at once
	if wanted {
		b.redo = true
	}
	b.mu.Unlock()
	if first {
		b.log.Warn("redisbroker: Redis dropped a subscription (cluster slot moved?); resubscribing on a new connection", "node", b.node, "channel", ch)
	}
	if wanted {
		kick(b.subKick)
	}
	return false
}

// beatNow asks the presence goroutine for a heartbeat at once, and for a
// comparison of the presence view with Redis a Heartbeat later (see
// presence_events.go).
func (b *Broker) beatNow() {
	b.mu.Lock()
	b.pres.beat = true
	b.pres.resyncAt = time.Now().Add(b.opts.Heartbeat)
	b.mu.Unlock()
	kick(b.presKick)
}

func (b *Broker) requestRedo() {
	b.mu.Lock()
	b.redo = true
	b.mu.Unlock()
	kick(b.subKick)
}

func (b *Broker) currentPS() *redis.PubSub {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ps
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// backoff paces reconnection attempts: 25ms, doubling up to 250ms. A
// failed attempt on loopback or a LAN costs a refused connect, so short
// waits are cheap, and they bound how long a node stays deaf after
// Redis is back.
type backoff struct{ d time.Duration }

const (
	backoffMin = 25 * time.Millisecond
	backoffMax = 250 * time.Millisecond
)

func (bo *backoff) reset() { bo.d = 0 }

// wait sleeps for the next delay; false if ctx ended first.
func (bo *backoff) wait(ctx context.Context) bool {
	bo.d = min(max(2*bo.d, backoffMin), backoffMax)
	t := time.NewTimer(bo.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
