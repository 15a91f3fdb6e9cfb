package redisbroker

import (
	"math/rand/v2"
	"time"
)

// Sequence numbers: how a receiver tells a duplicate and a loss.
//
// Redis pub/sub delivers at most once, in order, on each subscription
// connection, but a message can still arrive twice (go-redis sends a
// pipeline again when its reply was lost, and Redis publishes it again)
// or not at all (a subscriber that is reconnecting hears nothing). So
// the publisher numbers its messages per channel (pubSeqs) and the
// receiver checks the numbers (recvSeqs): it drops what it has already
// seen and counts what it skipped.
//
// Numbering is per channel, not per node, because a receiver hears only
// the channels it subscribes to: the messages of a room it is not in
// are no loss. A receiver therefore starts afresh on a channel each time
// it subscribes to it (the first message it hears there sets the
// baseline), and keeps its state across a reconnection, where a gap is
// precisely what was published while it could not hear.
//
// Both sides forget a channel after streamIdle without a message, so
// that their memory follows the rooms in use, not every room ever used.
// A publisher that numbers a channel again picks a new random stream, so
// a receiver never takes its new numbers for old ones; a receiver that
// forgot a stream starts afresh on its next message. Either way the
// only cost is that a loss right at that moment goes uncounted: a
// duplicate follows its original within Options.Timeout (go-redis
// resends within the publisher's call), far sooner than streamIdle.

// streamIdle is how long a channel's numbering is kept without a message.
const streamIdle = 10 * time.Minute

// pubSeqs numbers what this node publishes; owned by the publisher
// goroutine.
type pubSeqs struct {
	ch    map[string]*pubStream
	swept time.Time
}

type pubStream struct {
	seqNo
	used time.Time
}

// next returns the number of the next message on channel ch.
func (p *pubSeqs) next(ch string, now time.Time) seqNo {
	if p.ch == nil {
		p.ch = make(map[string]*pubStream)
		p.swept = now
	}
	if now.Sub(p.swept) >= streamIdle/2 {
		p.sweep(now)
	}
	s := p.ch[ch]
	if s == nil {
		s = &pubStream{seqNo: seqNo{stream: rand.Uint64()}}
		p.ch[ch] = s
	}
	s.n++
	s.used = now
	return s.seqNo
}

func (p *pubSeqs) sweep(now time.Time) {
	p.swept = now
	for ch, s := range p.ch {
		if now.Sub(s.used) >= streamIdle {
			delete(p.ch, ch)
		}
	}
}

// recvSeqs checks the numbers of what this node receives; owned by the
// receiver goroutine. It keys its state by stream, not by origin node: a
// stream has one publisher, whatever node name that publisher gives
// (two processes misconfigured with one name keep apart), and a
// restarted publisher's new stream starts afresh by itself.
type recvSeqs struct {
	ch    map[string]map[uint64]*recvStream // channel -> stream -> state
	swept time.Time
}

type recvStream struct {
	n    uint64 // the highest number received
	seen time.Time
}

// check records message sq on channel ch. It returns dup when the
// message was received already and must be dropped, and the number of
// messages of its stream skipped since the last one received (0 when in
// order, or when sq is the first of its stream this node hears).
func (r *recvSeqs) check(ch string, sq seqNo, now time.Time) (dup bool, missed uint64) {
	if sq.n == 0 {
		return false, 0 // not numbered (wire version 1)
	}
	if r.ch == nil {
		r.ch = make(map[string]map[uint64]*recvStream)
		r.swept = now
	}
	streams := r.ch[ch]
	if streams == nil {
		streams = make(map[uint64]*recvStream)
		r.ch[ch] = streams
	}
	s := streams[sq.stream]
	switch {
	case s == nil:
		streams[sq.stream] = &recvStream{n: sq.n, seen: now}
		return false, 0
	case sq.n <= s.n:
		return true, 0
	}
	missed = sq.n - s.n - 1
	s.n, s.seen = sq.n, now
	return false, missed
}

// reset forgets channel ch: the next message there sets the baseline.
// Called when this node subscribes to ch anew, or has unsubscribed.
func (r *recvSeqs) reset(ch string) { delete(r.ch, ch) }

// due reports whether a sweep is due.
func (r *recvSeqs) due(now time.Time) bool {
	return r.ch != nil && now.Sub(r.swept) >= streamIdle/2
}

// sweep forgets the streams idle for streamIdle, and the channels keep
// rejects (no longer subscribed).
func (r *recvSeqs) sweep(now time.Time, keep func(ch string) bool) {
	r.swept = now
	for ch, streams := range r.ch {
		if !keep(ch) {
			delete(r.ch, ch)
			continue
		}
		for id, s := range streams {
			if now.Sub(s.seen) >= streamIdle {
				delete(streams, id)
			}
		}
		if len(streams) == 0 {
			delete(r.ch, ch)
		}
	}
}
