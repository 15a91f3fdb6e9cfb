package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

var _ hub.HistoryBroker = (*Broker)(nil)

// History in Redis. With P the tag "{prefix}:", a room with history has
// three keys, all expiring History.TTL after the room's last message:
//
//	P h:<room>    stream: the kept messages, trimmed to History.Size;
//	              entry ID "<offset>-0", one field "m" (wire.go)
//	P he:<room>   string: the epoch
//	P ho:<room>   string: the offset of the newest message
//
// Append runs one Lua script (one round trip, atomic): it starts a new
// epoch when the epoch or the offset key is missing (Redis lost them:
// restarted without persistence, evicted, or the history expired),
// increments the offset, adds the message to the stream under that
// offset, refreshes the TTLs and publishes the message with its
// position on the room's channel. An epoch is the Redis server's clock
// in microseconds (14 hex digits) and random bytes, so a later epoch
// sorts after an earlier one and no two are the same.

// luaPrelude defines what both scripts share: KEYS[1] stream, KEYS[2]
// epoch, KEYS[3] offset.
const luaPrelude = `
local function newEpoch(rnd)
	local t = redis.call('TIME')
	local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
	return string.format('%014x', us) .. '.' .. rnd
end
-- epoch returns the room's epoch, starting a new one (and forgetting the
-- stream) when either key is missing, when create is set.
local function epoch(create, rnd, ttl)
	local e = redis.call('GET', KEYS[2])
	if e and redis.call('EXISTS', KEYS[3]) == 1 then
		return e
	end
	if not create then
		return false
	end
	e = newEpoch(rnd)
	redis.call('SET', KEYS[2], e)
	redis.call('SET', KEYS[3], 0)
	redis.call('DEL', KEYS[1])
	if ttl > 0 then
		redis.call('PEXPIRE', KEYS[2], ttl)
		redis.call('PEXPIRE', KEYS[3], ttl)
	end
	return e
end
`

// appendScript (written out rather than with luaPrelude: it runs for
// every message, and Lua closures cost): KEYS[4] the room's channel (a key too, so that a
// cluster checks its slot: sharded channels must be declared);
// ARGV: random bytes for a new epoch, Size, TTL in ms (0: none), the
// message's version and kind, the rest of the message, "1" for
// SPUBLISH. It returns {epoch, offset}.
var appendScript = redis.NewScript(`
local ttl = tonumber(ARGV[3])
local e = redis.call('GET', KEYS[2])
if not e or redis.call('EXISTS', KEYS[3]) == 0 then
	local t = redis.call('TIME')
	e = string.format('%014x', tonumber(t[1]) * 1000000 + tonumber(t[2])) .. '.' .. ARGV[1]
	redis.call('SET', KEYS[2], e)
	redis.call('SET', KEYS[3], 0)
	redis.call('DEL', KEYS[1])
end
local off = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], off .. '-0', 'm', ARGV[4] .. ARGV[5])
if ttl > 0 then
	redis.call('PEXPIRE', KEYS[1], ttl)
	redis.call('PEXPIRE', KEYS[2], ttl)
	redis.call('PEXPIRE', KEYS[3], ttl)
end
-- the position, as uvarints: the epoch's length (< 128), the offset
local n, v = off, {}
while n >= 128 do
	v[#v + 1] = n % 128 + 128
	n = math.floor(n / 128)
end
v[#v + 1] = n
local msg = ARGV[4] .. string.char(#e) .. e .. string.char(unpack(v)) .. ARGV[5]
if ARGV[6] == '1' then
	redis.call('SPUBLISH', KEYS[4], msg)
else
	redis.call('PUBLISH', KEYS[4], msg)
end
return {e, off}
`)

// readScript: ARGV: since's epoch, the first ID to read when since is
// of the current epoch, the last ID to read ("+": the newest), the
// number of entries (0: all), random bytes to start an epoch when
// there is none ("": do not), its TTL in ms. It returns {epoch, head
// offset, entries}, or {"", 0} when the room has no epoch.
var readScript = redis.NewScript(luaPrelude + `
local e = epoch(ARGV[5] ~= '', ARGV[5], tonumber(ARGV[6]))
if not e then
	return {'', 0}
end
local head = tonumber(redis.call('GET', KEYS[3]))
local from = '-'
if e == ARGV[1] then
	from = ARGV[2]
end
local r
if ARGV[4] == '0' then
	r = redis.call('XRANGE', KEYS[1], from, ARGV[3])
else
	r = redis.call('XRANGE', KEYS[1], from, ARGV[3], 'COUNT', ARGV[4])
end
return {e, head, r}
`)

// rotateScript starts a new epoch for a room whose offset went back
// (Redis lost its last writes but kept the epoch: a crash with
// appendfsync everysec, a failover to a lagging replica), unless another
// node did already. ARGV: the epoch seen, the offset a node delivered,
// random bytes. It returns the room's epoch afterwards.
var rotateScript = redis.NewScript(`
local e = redis.call('GET', KEYS[2])
local off = tonumber(redis.call('GET', KEYS[3]) or '0')
if e ~= ARGV[1] or off >= tonumber(ARGV[2]) then
	return e or ''
end
local ttl = redis.call('PTTL', KEYS[2])
local t = redis.call('TIME')
e = string.format('%014x', tonumber(t[1]) * 1000000 + tonumber(t[2])) .. '.' .. ARGV[3]
redis.call('SET', KEYS[2], e)
redis.call('SET', KEYS[3], 0)
redis.call('DEL', KEYS[1])
if ttl > 0 then
	redis.call('PEXPIRE', KEYS[2], ttl)
	redis.call('PEXPIRE', KEYS[3], ttl)
end
return e
`)

// defaultHistoryTTL is the TTL of an epoch that History starts for a
// room without one, before this broker has seen an Append tell it the
// Hub's History.TTL.
const defaultHistoryTTL = 10 * time.Minute

// Key names of a room's history.
func (b *Broker) streamKey(room string) string { return b.tag + "h:" + room }
func (b *Broker) epochKey(room string) string  { return b.tag + "he:" + room }
func (b *Broker) offsetKey(room string) string { return b.tag + "ho:" + room }

func (b *Broker) historyKeys(room string) []string {
	return []string{b.streamKey(room), b.epochKey(room), b.offsetKey(room)}
}

// appendArgs is what the publisher needs to run appendScript.
type appendArgs struct {
	room string
	head []byte // version and kind
	body []byte // the rest, position aside
	size int
	ttl  int64 // ms; 0: none
	pos  hub.Position
}

// Append stores e in its room's history and publishes it, with its
// Position, to every node subscribed to the room, this one included;
// implements hub.HistoryBroker. The history is trimmed to exactly
// h.Size messages and expires h.TTL after the room's last message (a
// zero TTL: never). Like Publish, Append returns within Options.Timeout
// whatever Redis does, and fails at once while Redis is known to be
// down: with ErrUnavailable the message was not stored nor delivered;
// with ErrTimeout it may have been (Redis did not answer in time).
func (b *Broker) Append(ctx context.Context, e hub.Envelope, h hub.History) (hub.Position, error) {
	if err := b.isOpen(); err != nil {
		return hub.Position{}, err
	}
	if e.Room == "" || e.Target != "" {
		return hub.Position{}, fmt.Errorf("redisbroker: Append: a message of a room (Envelope.Room set, Target empty)")
	}
	if h.Size < 1 || h.TTL < 0 {
		return hub.Position{}, fmt.Errorf("redisbroker: Append: History.Size must be at least 1 and History.TTL not negative (got %+v)", h)
	}
	if e.Origin == "" {
		e.Origin = b.node
	}
	if h.TTL > 0 {
		b.histTTL.Store(int64(h.TTL))
	}
	if b.mode.Load() == modeUnknown {
		return hub.Position{}, b.pubFailed(fmt.Errorf("%w: Redis has not been reached yet", ErrUnavailable))
	}
	if err := b.unavailable(); err != nil {
		return hub.Position{}, b.pubFailed(err)
	}
	r := &pubReq{
		channel: b.roomChannel(e.Room),
		done:    make(chan error, 1),
		app: &appendArgs{
			room: e.Room,
			head: historyHead(e),
			body: historyBody(e),
			size: h.Size,
			ttl:  h.TTL.Milliseconds(),
		},
	}
	if h.TTL > 0 && r.app.ttl == 0 {
		r.app.ttl = 1
	}
	if err := b.submit(ctx, r); err != nil {
		return hub.Position{}, err
	}
	return r.app.pos, nil
}

// History returns the kept messages of room after since, oldest first,
// at most limit of them (limit <= 0: all), and the room's current
// position; implements hub.HistoryBroker. A room without an epoch gets
// one (with offset 0), so that a member that joins an empty room has a
// Position to resume from. History returns within Options.Timeout, with
// an error wrapping ErrUnavailable or ErrTimeout when Redis cannot
// answer.
//
// This node delivers, for a room it subscribes to anew (its first local
// member), every message after the position History returned for that
// room in the few seconds before or since Subscribe, so that a Hub that
// reads a room's history around the first join of a room on this node
// misses nothing between that read and the subscription.
func (b *Broker) History(ctx context.Context, room string, since hub.Position, limit int) ([]hub.Entry, hub.Position, error) {
	var (
		entries []hub.Entry
		head    hub.Position
	)
	ttl := time.Duration(b.histTTL.Load())
	err := b.callWithin(ctx, "History", historyTimeouts*b.opts.Timeout, func(ctx context.Context) error {
		res, err := b.readHistory(ctx, b.client, room, since, "+", limit, true, ttl).result()
		if err != nil {
			return err
		}
		head = res.head
		entries = make([]hub.Entry, 0, len(res.msgs))
		for _, e := range res.msgs {
			entries = append(entries, hub.Entry{Position: e.Position, Type: e.Type, Data: e.Data})
		}
		return nil
	})
	if err != nil {
		return nil, hub.Position{}, err
	}
	b.noteHead(room, head)
	return entries, head, nil
}

// readCmd is a readScript call and how to decode its answer.
type readCmd struct {
	cmd  *redis.Cmd
	room string
	b    *Broker
}

// readResult is a decoded readScript answer.
type readResult struct {
	head hub.Position // zero: the room has no epoch
	msgs []hub.Envelope
	bad  int // entries that did not decode (counted in Stats.Malformed)
}

// readHistory queues or runs readScript on c: the entries of room after
// since up to the ID to ("+": the newest), at most limit (<= 0: all).
// With create, a room without an epoch gets one, expiring after ttl.
func (b *Broker) readHistory(ctx context.Context, c redis.Scripter, room string, since hub.Position, to string, limit int, create bool, ttl time.Duration) readCmd {
	rnd := ""
	if create {
		rnd = randomID()
	}
	args := []any{since.Epoch, strconv.FormatUint(since.Offset+1, 10) + "-0", to, max(limit, 0), rnd, ttl.Milliseconds()}
	var cmd *redis.Cmd
	if _, pipelined := c.(redis.Pipeliner); pipelined {
		// In a pipeline a missing script (Redis restarted) cannot be
		// retried command by command; these reads are rare (filling a
		// gap), so they send the script itself.
		cmd = readScript.Eval(ctx, c, b.historyKeys(room), args...)
	} else {
		cmd = readScript.Run(ctx, c, b.historyKeys(room), args...)
	}
	return readCmd{cmd: cmd, room: room, b: b}
}

func (rc readCmd) result() (readResult, error) {
	var res readResult
	v, err := rc.cmd.Slice()
	if err != nil {
		return res, err
	}
	if len(v) < 2 {
		return res, fmt.Errorf("%w: history script answered %d values", ErrMalformed, len(v))
	}
	epoch, _ := v[0].(string)
	off, _ := v[1].(int64)
	if epoch == "" {
		return res, nil
	}
	res.head = hub.Position{Epoch: epoch, Offset: uint64(max(off, 0))}
	if len(v) < 3 {
		return res, nil
	}
	items, _ := v[2].([]any)
	res.msgs = make([]hub.Envelope, 0, len(items))
	for _, it := range items {
		e, err := decodeStreamEntry(it, epoch)
		if err != nil {
			res.bad++
			rc.b.stats.malformed.Add(1)
			continue
		}
		res.msgs = append(res.msgs, e)
	}
	return res, nil
}

// decodeStreamEntry decodes one XRANGE entry, [id, [field, value, …]].
func decodeStreamEntry(it any, epoch string) (hub.Envelope, error) {
	pair, _ := it.([]any)
	if len(pair) != 2 {
		return hub.Envelope{}, ErrMalformed
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	ms, seq, ok := cutID(id)
	if !ok || seq != 0 || ms == 0 || len(fields) != 2 || fields[0] != "m" {
		return hub.Envelope{}, fmt.Errorf("%w: stream entry %q", ErrMalformed, id)
	}
	data, _ := fields[1].(string)
	return decodeEntry([]byte(data), hub.Position{Epoch: epoch, Offset: ms})
}

func cutID(id string) (ms, seq uint64, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			a, err1 := strconv.ParseUint(id[:i], 10, 64)
			s, err2 := strconv.ParseUint(id[i+1:], 10, 64)
			return a, s, err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

// randomID returns 12 random URL-safe characters: the random part of an
// epoch. A new one for every call, so that a Redis that lost a room's
// epoch never gets the same one back.
func randomID() string {
	var p [9]byte
	rand.Read(p[:])
	return base64.RawURLEncoding.EncodeToString(p[:])
}

// laterEpoch reports whether epoch x was started after y. Epochs of this
// broker start with 14 hex digits of Redis' clock; any other string is
// not ordered (false).
func laterEpoch(x, y string) bool {
	if len(x) < 15 || len(y) < 15 || x[14] != '.' || y[14] != '.' {
		return false
	}
	return x[:14] > y[:14]
}

// historyTimeouts is how many Options.Timeout a read of history may
// take: it can return thousands of messages, and in a reconnect storm it
// competes with every member's join for Redis and the CPU.
const historyTimeouts = 10

// callWithin runs fn with ctx bounded by timeout, on a goroutine of its
// own so that the caller's wait is bounded even where go-redis does not
// watch the context; Close waits for it. name names the call in errors.
func (b *Broker) callWithin(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) error {
	b.mu.Lock()
	switch b.state {
	case stateNew:
		b.mu.Unlock()
		return ErrNotOpen
	case stateClosed:
		b.mu.Unlock()
		return ErrClosed
	}
	b.calls.Add(1)
	b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		b.calls.Done()
		return fmt.Errorf("redisbroker: %s: %w", name, err)
	}
	if b.cmdHealth.isDown.Load() {
		b.calls.Done()
		return b.cmdHealth.err()
	}
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer b.calls.Done()
		err := fn(ctx)
		if err != nil {
			if cerr := caller.Err(); cerr != nil {
				err = fmt.Errorf("redisbroker: %s: %w", name, cerr)
			} else if !isReply(err) {
				b.cmdHealth.fail(err)
				err = classify(err)
			}
		} else {
			b.cmdHealth.ok()
		}
		res <- err
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		if err := caller.Err(); err != nil {
			return fmt.Errorf("redisbroker: %s: %w", name, err)
		}
		return classify(ctx.Err())
	}
}

// isReply reports whether err is Redis' own answer to a command (a
// script error, a wrong type), which says Redis works, rather than a
// failure to reach it. LOADING (Redis is reading its AOF after a
// restart) counts as a failure to reach it.
func isReply(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	return !redis.HasErrorPrefix(err, "LOADING") && !redis.HasErrorPrefix(err, "MASTERDOWN") &&
		!redis.HasErrorPrefix(err, "CLUSTERDOWN") && !redis.HasErrorPrefix(err, "READONLY")
}

// A head note is the position History returned for a room, kept for a
// short while: a room this node then subscribes to anew is delivered
// from there (see History).
type headNote struct {
	pos hub.Position
	at  time.Time
}

// headWindow is how long before Subscribe a History call still counts.
const headWindow = 5 * time.Second

// noteHead records what History returned for room.
func (b *Broker) noteHead(room string, pos hub.Position) {
	if pos.Epoch == "" {
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.notes == nil {
		b.notes = make(map[string]headNote)
	}
	if n, ok := b.notes[room]; ok && n.pos.Epoch == pos.Epoch && n.pos.Offset <= pos.Offset && now.Sub(n.at) < headWindow {
		return // the earlier note covers this one
	}
	b.notes[room] = headNote{pos: pos, at: now}
	if len(b.notes) > 1024 {
		b.sweepNotesLocked(now)
	}
}

// takeNote returns the position a room subscribed anew is delivered
// from, if History was called for it in time; b.mu must be held.
func (b *Broker) takeNoteLocked(room string, subAt time.Time) (hub.Position, bool) {
	n, ok := b.notes[room]
	if !ok {
		return hub.Position{}, false
	}
	delete(b.notes, room)
	return n.pos, !n.at.Before(subAt.Add(-headWindow))
}

// sweepNotesLocked forgets notes too old to be used; b.mu must be held.
func (b *Broker) sweepNotesLocked(now time.Time) {
	for room, n := range b.notes {
		if _, pending := b.subAt[room]; !pending && now.Sub(n.at) > headWindow {
			delete(b.notes, room)
		}
	}
}

// The receiving side of history: what a node delivers for a room with
// history. Owned by the receiver goroutine.
//
// For each such room the receiver remembers the position of the last
// message it delivered (b.hist). A message right after it is delivered;
// one at or before it is a copy (dropped); one further on means pub/sub
// lost the ones in between, which the receiver reads from the stream
// and delivers first. A message of a later epoch starts the room afresh:
// the receiver delivers that epoch from its first kept message. A room's
// first message on a subscription sets the baseline, unless History gave
// one (see History). After the subscription connection was lost, every
// room is compared with its stream at once (b.check), so that the last
// messages published while this node could not hear are delivered
// without waiting for a later one.

// receiveHistory handles a message of a room with history.
func (b *Broker) receiveHistory(ch string, e hub.Envelope, now time.Time) {
	room, pos := e.Room, e.Position
	last, known := b.hist[room]
	switch {
	case !known:
	case pos.Epoch == last.Epoch && pos.Offset <= last.Offset:
		b.stats.duplicates.Add(1)
		return
	case pos.Epoch == last.Epoch && pos.Offset == last.Offset+1:
	case pos.Epoch != last.Epoch && laterEpoch(last.Epoch, pos.Epoch):
		// A message of an epoch this node has already left (queued on
		// the connection while Redis lost the room): the Hub has
		// moved on to the new epoch, where it does not belong.
		b.lost(e.Origin, ch, 1, now)
		return
	default:
		from := last
		if pos.Epoch != last.Epoch {
			from = hub.Position{Epoch: pos.Epoch}
		}
		b.fillGap(ch, room, from, pos.Offset-1, now)
	}
	b.hist[room] = pos
	delete(b.check, room) // delivered up to a live message: nothing older is missing
	b.stats.received.Add(1)
	b.hand(e)
}

// fillGap reads the messages of room after from up to offset to from
// the stream and delivers them; what the stream no longer has is
// counted in Stats.Missed.
func (b *Broker) fillGap(ch, room string, from hub.Position, to uint64, now time.Time) {
	var (
		res readResult
		err error
	)
	for try := 0; try < 2; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
		res, err = b.readHistory(ctx, b.client, room, from, strconv.FormatUint(to, 10)+"-0", 0, false, 0).result()
		cancel()
		if err == nil || b.ctx.Err() != nil {
			break
		}
	}
	if err != nil || res.head.Epoch != from.Epoch {
		if err != nil && !isReply(err) {
			b.cmdHealth.fail(err)
		}
		b.lost("", ch, to-from.Offset, now)
		if err == nil {
			b.log.Warn("redisbroker: a gap in a room's history could not be filled: Redis has moved to another epoch",
				"node", b.node, "room", room, "epoch", from.Epoch, "redis_epoch", res.head.Epoch)
		}
		return
	}
	b.deliverFilled(ch, room, from, res.msgs, to, now)
}

// deliverFilled delivers msgs, read from the stream of room after from,
// in order, skipping what was delivered already, and counts the offsets
// up to to (0: no bound) that it does not have.
func (b *Broker) deliverFilled(ch, room string, from hub.Position, msgs []hub.Envelope, to uint64, now time.Time) {
	next := from.Offset + 1
	var missing uint64
	for _, e := range msgs {
		off := e.Position.Offset
		if e.Position.Epoch != from.Epoch || off < next || (to > 0 && off > to) {
			continue
		}
		missing += off - next // trimmed away, or expired
		next = off + 1
		b.hist[room] = e.Position
		b.stats.filled.Add(1)
		b.stats.received.Add(1)
		b.hand(e)
	}
	if to >= next {
		missing += to - next + 1
	}
	if missing > 0 {
		b.lost("", ch, missing, now)
	}
}

// checkDelay bounds how soon a failed comparison with Redis is retried.
const checkDelay = 100 * time.Millisecond

// runChecks compares each room in b.check with its stream, in one round
// trip, and delivers what this node has not. It reports false when Redis
// could not answer (the rooms stay in b.check).
func (b *Broker) runChecks(now time.Time) bool {
	rooms := make([]string, 0, len(b.check))
	b.mu.Lock()
	for room := range b.check {
		if _, ok := b.want[b.roomChannel(room)]; ok {
			rooms = append(rooms, room)
		} else {
			delete(b.check, room)
		}
	}
	b.mu.Unlock()
	if len(rooms) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make([]readCmd, len(rooms))
	for i, room := range rooms {
		cmds[i] = b.readHistory(ctx, pipe, room, b.hist[room], "+", 0, false, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReply(err) {
		if b.ctx.Err() == nil {
			b.log.Debug("redisbroker: comparing rooms with their history failed; retrying", "node", b.node, "error", err)
		}
		return false
	}
	for i, room := range rooms {
		res, err := cmds[i].result()
		if err != nil {
			continue // a reply error: retried with the next check
		}
		delete(b.check, room)
		last := b.hist[room]
		ch := b.roomChannel(room)
		switch {
		case res.head.Epoch == "":
			// Redis has no history for the room (lost, and nothing
			// appended since): the next message starts a new epoch.
		case res.head.Epoch == last.Epoch:
			if res.head.Offset < last.Offset {
				b.rotate(ctx, room, last, res.head)
				continue
			}
			b.deliverFilled(ch, room, last, res.msgs, res.head.Offset, now)
		case laterEpoch(last.Epoch, res.head.Epoch):
			// Not newer than what was delivered: nothing to do.
		default:
			b.deliverFilled(ch, room, hub.Position{Epoch: res.head.Epoch}, res.msgs, res.head.Offset, now)
		}
	}
	return true
}

// rotate starts a new epoch for room, whose offset in Redis (head) is
// behind what this node delivered (last): Redis lost its last writes
// but kept the epoch. Going on in that epoch would give new messages the
// offsets of lost ones, which the nodes that delivered those would drop
// as copies; a new epoch tells every node and member that the history
// was lost.
func (b *Broker) rotate(ctx context.Context, room string, last, head hub.Position) {
	e, err := rotateScript.Run(ctx, b.client, b.historyKeys(room), last.Epoch, last.Offset, randomID()).Text()
	b.log.Warn("redisbroker: a room's history in Redis is behind what this node delivered (Redis lost its last writes: a crash with appendfsync other than always, or a failover to a lagging replica); starting a new epoch",
		"node", b.node, "room", room, "epoch", last.Epoch, "delivered", last.Offset, "redis_offset", head.Offset, "new_epoch", e, "error", err)
}

// hand calls the Hub's deliver; one call at a time, whichever goroutine
// delivers (the receiver, or the presence goroutine for expired members).
func (b *Broker) hand(e hub.Envelope) {
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	b.deliver(e)
}
