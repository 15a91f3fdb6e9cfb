package redisbroker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

// Presence in Redis. All keys carry the application's hash tag, so they
// share one cluster slot. With P the tag "{prefix}:" and I this Open's
// instance ID (random: a restarted node with the same name never revives
// its predecessor's members):
//
//	P pr:<room>        set of instances with members in room
//	P pm:<I>:<room>    hash: connection ID -> member (JSON: node, meta)
//	P c:<connID>       string: "<I>|<node>", the instance and node holding
//	                   the connection (SendTo)
//
// The room keys carry a TTL of Options.PresenceTTL, refreshed every
// Options.Heartbeat, so the entries of a node that stopped without
// cleaning up expire PresenceTTL after its last heartbeat. A node has
// one key per connection, and refreshing each of them every heartbeat
// would cost Redis a command per connection every Heartbeat (50,000 a
// second at 100,000 connections with the defaults): so a connection's
// key lives connTTL and each is refreshed only once in a third of that,
// and SendTo trusts it only while its instance's key (P i:<I>, below)
// is alive. A heartbeat
// that finds a key missing (Redis restarted without persistence, or an
// outage outlasted the TTL) writes it again from the node's local state,
// which is the truth: Redis is a cache of it.
//
// AddMember and RemoveMember only change the local state and mark it
// dirty; the presence goroutine writes it out. So a Join never waits on
// Redis, and changes made while Redis is down are written when it is
// back.

// memberKey names a membership: one connection in one room.
type memberKey struct{ room, conn string }

// presence is this node's membership and what Redis has not been told
// yet; guarded by Broker.mu.
type presence struct {
	local        map[string]map[string]hub.Member // room -> connection ID -> member
	conns        map[string]*connEntry
	dirtyMembers map[memberKey]struct{}
	dirtyConns   map[string]struct{}
	beat         bool        // a heartbeat is due now (after a reconnect)
	events       []presEvent // changes not yet published, in order
	resyncAt     time.Time   // when to compare the view with Redis (after a reconnect); zero: not due
}

type connEntry struct {
	rooms int       // local rooms the connection is in
	node  string    // the node that holds it
	due   time.Time // when its key is to be refreshed; zero: not written yet
}

// connTTL is how long a connection's key lives in Redis without a
// refresh; it is refreshed a third of that after it was last written.
func (b *Broker) connTTL() time.Duration {
	return max(10*b.opts.PresenceTTL, time.Minute)
}

func (p *presence) init() {
	p.local = make(map[string]map[string]hub.Member)
	p.conns = make(map[string]*connEntry)
	p.dirtyMembers = make(map[memberKey]struct{})
	p.dirtyConns = make(map[string]struct{})
}

// storedMember is a member's value in Redis.
type storedMember struct {
	Node string            `json:"node"`
	Meta map[string]string `json:"meta,omitempty"`
}

// AddMember records that m is in room; implements hub.Broker. It only
// updates this node's state and returns at once: the presence goroutine
// writes it to Redis, normally within a round trip, and again after
// Redis comes back if it was down. Other nodes see it from then on; this
// node's Members sees it at once.
func (b *Broker) AddMember(ctx context.Context, room string, m hub.Member) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	if m.Node == "" {
		m.Node = b.node
	}
	m.Meta = maps.Clone(m.Meta)
	b.mu.Lock()
	p := &b.pres
	rm := p.local[room]
	if rm == nil {
		rm = make(map[string]hub.Member)
		p.local[room] = rm
	}
	if _, in := rm[m.ConnID]; !in {
		b.queueEventLocked(room, m, true, false)
		e := p.conns[m.ConnID]
		if e == nil {
			e = &connEntry{node: m.Node}
			p.conns[m.ConnID] = e
			p.dirtyConns[m.ConnID] = struct{}{}
		}
		e.rooms++
	}
	rm[m.ConnID] = m
	p.dirtyMembers[memberKey{room, m.ConnID}] = struct{}{}
	b.mu.Unlock()
	kick(b.presKick)
	return nil
}

// RemoveMember records that m left room; implements hub.Broker. Like
// AddMember it returns at once and Redis is updated in the background.
// Removing a member that is not in room does nothing: calls are applied
// in the order they are made, as the Hub makes them (under its lock).
func (b *Broker) RemoveMember(ctx context.Context, room string, m hub.Member) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	b.mu.Lock()
	p := &b.pres
	if rm := p.local[room]; rm != nil {
		if old, in := rm[m.ConnID]; in {
			b.queueEventLocked(room, old, false, false)
			delete(rm, m.ConnID)
			if len(rm) == 0 {
				delete(p.local, room)
			}
			if e := p.conns[m.ConnID]; e != nil {
				if e.rooms--; e.rooms <= 0 {
					delete(p.conns, m.ConnID)
					p.dirtyConns[m.ConnID] = struct{}{}
				}
			}
			p.dirtyMembers[memberKey{room, m.ConnID}] = struct{}{}
		}
	}
	b.mu.Unlock()
	kick(b.presKick)
	return nil
}

// Members lists the members of room on every node; implements
// hub.Broker (Hub.Presence). This node's members come from its own
// state; the other nodes' from Redis, as fresh as their last write: a
// member of a node that died without cleaning up is listed until its
// entry expires, at most Options.PresenceTTL after that node's last
// heartbeat. For a room this node has members in, the members read are
// also remembered, so that their leaves are delivered to this node's Hub
// should their node die (presence_events.go). The list is sorted by
// node, then connection ID. Members
// returns within Options.Timeout; when Redis cannot answer, the error
// wraps ErrUnavailable or ErrTimeout. When ctx ends first (the caller
// went away), the error wraps ctx's: that says nothing about Redis, so
// it is neither counted nor taken for an outage.
func (b *Broker) Members(ctx context.Context, room string) ([]hub.Member, error) {
	b.mu.Lock()
	switch b.state {
	case stateNew:
		b.mu.Unlock()
		return nil, ErrNotOpen
	case stateClosed:
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.calls.Add(1)
	b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		b.calls.Done()
		return nil, callerGone(err)
	}
	if b.cmdHealth.isDown.Load() {
		b.calls.Done()
		return nil, b.cmdHealth.err()
	}

	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	type result struct {
		ms  []hub.Member
		err error
	}
	// The reads run on their own goroutine so that the caller's wait is
	// bounded by ctx even where go-redis does not watch it (without
	// ContextTimeoutEnabled, its socket timeouts apply). Close waits for
	// it (b.calls).
	res := make(chan result, 1)
	go func() {
		defer b.calls.Done()
		ms, err := b.readMembers(caller, ctx, room)
		res <- result{ms, err}
	}()
	select {
	case r := <-res:
		return r.ms, r.err
	case <-ctx.Done():
		if err := caller.Err(); err != nil {
			return nil, callerGone(err)
		}
		return nil, classify(ctx.Err())
	}
}

// callerGone is the error of a call whose caller's context ended first.
func callerGone(err error) error {
	return fmt.Errorf("redisbroker: Members: %w", err)
}

// cmdFailed records that a command of a caller's call failed, and returns
// the error for the caller. When the caller's context ended (it hung up,
// or its own deadline passed), the failure is its doing, not Redis': the
// health of the command path is left alone, so that a client that hangs
// up cannot make Publish fail for everyone. Only failures that say
// something about Redis (network errors, the broker's own Timeout) count.
func (b *Broker) cmdFailed(caller context.Context, err error) error {
	if cerr := caller.Err(); cerr != nil {
		return callerGone(cerr)
	}
	b.cmdHealth.fail(err)
	return classify(err)
}

// dropStale removes an instance from a room's set if its hash expired,
// atomically, so an instance that is adding itself back is never lost.
const dropStale = `
if redis.call('EXISTS', KEYS[1]) == 0 then
	return redis.call('SREM', KEYS[2], ARGV[1])
end
return 0`

// decodeStored decodes a member's value in Redis.
func decodeStored(conn, v string) (hub.Member, bool) {
	var sm storedMember
	if err := json.Unmarshal([]byte(v), &sm); err != nil || sm.Node == "" {
		return hub.Member{}, false
	}
	return hub.Member{ConnID: conn, Node: sm.Node, Meta: sm.Meta}, true
}

// readMembers reads room's members from Redis with ctx, which is the
// caller's context bounded by Options.Timeout.
func (b *Broker) readMembers(caller, ctx context.Context, room string) ([]hub.Member, error) {
	insts, err := b.client.SMembers(ctx, b.roomSetKey(room)).Result()
	if err != nil {
		return nil, b.cmdFailed(caller, err)
	}
	var (
		pipe  redis.Pipeliner
		names []string
		cmds  []*redis.MapStringStringCmd
	)
	for _, inst := range insts {
		if inst == b.inst {
			continue // this node: its own state is exact
		}
		if pipe == nil {
			pipe = b.client.Pipeline()
		}
		names = append(names, inst)
		cmds = append(cmds, pipe.HGetAll(ctx, b.memberKey(inst, room)))
	}
	if pipe != nil {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, b.cmdFailed(caller, err)
		}
	}
	b.cmdHealth.ok()

	var out []hub.Member
	b.mu.Lock()
	for _, m := range b.pres.local[room] {
		m.Meta = maps.Clone(m.Meta)
		out = append(out, m)
	}
	b.mu.Unlock()
	var stale redis.Pipeliner
	byInst := make(map[string][]hub.Member, len(cmds))
	defer func() {
		b.mu.Lock()
		b.learnLocked(room, byInst)
		b.mu.Unlock()
	}()
	for i, c := range cmds {
		vals := c.Val()
		if len(vals) == 0 {
			if stale == nil {
				stale = b.client.Pipeline()
			}
			key := b.memberKey(names[i], room)
			stale.Eval(ctx, dropStale, []string{key, b.roomSetKey(room)}, names[i])
			continue
		}
		for conn, v := range vals {
			m, ok := decodeStored(conn, v)
			if !ok {
				b.stats.malformed.Add(1)
				continue
			}
			out = append(out, m)
			byInst[names[i]] = append(byInst[names[i]], m)
		}
	}
	if stale != nil {
		stale.Exec(ctx) // best effort: the set's own TTL bounds what is left
	}
	slices.SortFunc(out, func(x, y hub.Member) int {
		return cmp.Or(cmp.Compare(x.Node, y.Node), cmp.Compare(x.ConnID, y.ConnID))
	})
	return out, nil
}

// runPresence writes presence changes to Redis and sends the heartbeats.
// It is owned by the Broker and ends when Close cancels b.ctx; Close then
// removes this node's presence itself.
func (b *Broker) runPresence() {
	defer b.wg.Done()
	tick := time.NewTicker(b.opts.Heartbeat)
	defer tick.Stop()
	var (
		bo    backoff
		retry <-chan time.Time // set while a failed write waits to be retried
	)
	for {
		beat := false
		select {
		case <-b.ctx.Done():
			return
		case <-b.presKick:
		case <-retry:
			beat = true
		case <-tick.C:
			beat = true
		}
		if b.ctx.Err() != nil {
			// Closed while another case was ready too: Close removes
			// the presence itself; a write now would be cut short.
			return
		}
		if b.cmdHealth.isDown.Load() {
			// During an outage only this probe talks to Redis for
			// commands; Publish and Members fail fast until it succeeds.
			if err := b.probe(); err != nil {
				b.cmdHealth.fail(err)
				bo.d = min(max(2*bo.d, backoffMin), backoffMax)
				retry = time.After(bo.d)
				continue
			}
			b.cmdHealth.ok()
			beat = true // Redis may have restarted empty: check everything
		}
		b.mu.Lock()
		beat = beat || b.pres.beat
		b.pres.beat = false
		resync := !b.pres.resyncAt.IsZero() && !time.Now().Before(b.pres.resyncAt)
		b.mu.Unlock()

		var err error
		if beat {
			err = b.heartbeat()
		}
		if err == nil {
			err = b.flush()
		}
		if err == nil && beat {
			err = b.expireDead()
		}
		if err == nil && resync {
			if err = b.resync(); err == nil {
				b.mu.Lock()
				b.pres.resyncAt = time.Time{}
				b.mu.Unlock()
			}
		}
		if err != nil {
			b.stats.presenceErrors.Add(1)
			b.cmdHealth.fail(err)
			bo.d = min(max(2*bo.d, backoffMin), backoffMax)
			retry = time.After(bo.d)
			continue
		}
		bo.reset()
		retry = nil
	}
}

// probe checks whether Redis answers commands again.
func (b *Broker) probe() error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	return b.client.Ping(ctx).Err()
}

// heartbeat extends the TTL of this node's presence keys, and marks dirty
// whatever Redis no longer has, for flush to write again.
func (b *Broker) heartbeat() error {
	now := time.Now()
	b.mu.Lock()
	rooms := slices.Collect(maps.Keys(b.pres.local))
	var conns []string // those whose key is due for a refresh
	for id, e := range b.pres.conns {
		if !e.due.IsZero() && !now.Before(e.due) {
			conns = append(conns, id)
		}
	}
	b.mu.Unlock()
	if len(rooms)+len(conns) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Heartbeat)
	defer cancel()
	ttl := b.opts.PresenceTTL
	pipe := b.client.Pipeline()
	alive := pipe.PExpire(ctx, b.aliveKey(b.inst), ttl)
	roomCmds := make([]*redis.BoolCmd, len(rooms))
	for i, room := range rooms {
		roomCmds[i] = pipe.PExpire(ctx, b.memberKey(b.inst, room), ttl)
		pipe.SAdd(ctx, b.roomSetKey(room), b.inst)
		pipe.PExpire(ctx, b.roomSetKey(room), ttl)
	}
	connCmds := make([]*redis.BoolCmd, len(conns))
	for i, conn := range conns {
		connCmds[i] = pipe.PExpire(ctx, b.connKey(conn), b.connTTL())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	b.cmdHealth.ok()
	b.mu.Lock()
	defer b.mu.Unlock()
	p := &b.pres
	if !alive.Val() {
		// Redis lost this node's key (a restart), or this node was cut
		// off long enough for the others to give its members up: the
		// members are written again (below) and announced again, and
		// every connection's key too (those not due now are not
		// checked below).
		b.reannounceLocked()
		for conn := range p.conns {
			p.dirtyConns[conn] = struct{}{}
		}
	}
	for i, c := range roomCmds {
		if c.Val() {
			continue
		}
		for conn := range p.local[rooms[i]] {
			p.dirtyMembers[memberKey{rooms[i], conn}] = struct{}{}
		}
	}
	next := now.Add(b.connTTL() / 3)
	for i, c := range connCmds {
		if !c.Val() {
			p.dirtyConns[conns[i]] = struct{}{}
		} else if e := p.conns[conns[i]]; e != nil {
			e.due = next
		}
	}
	return nil
}

// flush writes the dirty part of this node's presence to Redis. On
// failure the changes stay dirty and are retried.
func (b *Broker) flush() error {
	b.mu.Lock()
	p := &b.pres
	if len(p.dirtyMembers) == 0 && len(p.dirtyConns) == 0 && len(p.events) == 0 {
		b.mu.Unlock()
		return nil
	}
	dm, dc, events := p.dirtyMembers, p.dirtyConns, p.events
	p.dirtyMembers, p.dirtyConns, p.events = make(map[memberKey]struct{}), make(map[string]struct{}), nil

	// The commands are built under the lock from the current state, so
	// that what is written is never older than what a later flush writes.
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Heartbeat)
	defer cancel()
	ttl := b.opts.PresenceTTL
	pipe := b.client.Pipeline()
	touched := make(map[string]struct{})
	for k := range dm {
		touched[k.room] = struct{}{}
		key := b.memberKey(b.inst, k.room)
		if m, ok := p.local[k.room][k.conn]; ok {
			v, _ := json.Marshal(storedMember{Node: m.Node, Meta: m.Meta})
			pipe.HSet(ctx, key, k.conn, v)
		} else {
			pipe.HDel(ctx, key, k.conn)
		}
	}
	for room := range touched {
		if len(p.local[room]) > 0 {
			pipe.PExpire(ctx, b.memberKey(b.inst, room), ttl)
			pipe.SAdd(ctx, b.roomSetKey(room), b.inst)
			pipe.PExpire(ctx, b.roomSetKey(room), ttl)
		} else {
			pipe.Del(ctx, b.memberKey(b.inst, room))
			pipe.SRem(ctx, b.roomSetKey(room), b.inst)
		}
	}
	due := time.Now().Add(b.connTTL() / 3)
	for conn := range dc {
		if e := p.conns[conn]; e != nil {
			pipe.Set(ctx, b.connKey(conn), b.inst+"|"+e.node, b.connTTL())
			e.due = due
		} else {
			pipe.Del(ctx, b.connKey(conn))
		}
	}
	if len(p.local) > 0 {
		pipe.Set(ctx, b.aliveKey(b.inst), b.node, ttl)
	}
	// After the writes: a node that hears a join finds the member in
	// Members.
	b.publishEvents(ctx, pipe, events)
	b.mu.Unlock()

	if _, err := pipe.Exec(ctx); err != nil {
		b.mu.Lock()
		maps.Copy(p.dirtyMembers, dm)
		maps.Copy(p.dirtyConns, dc)
		p.events = append(events, p.events...)
		b.mu.Unlock()
		return err
	}
	b.cmdHealth.ok()
	return nil
}

// removePresence deletes this node's presence from Redis, at Close.
// Should Redis be unreachable, the entries expire by themselves: when
// this node already knows it is (either path is down), Close does not
// wait Options.Timeout to find out again.
func (b *Broker) removePresence() error {
	b.mu.Lock()
	p := &b.pres
	rooms := make(map[string]struct{})
	for room := range p.local {
		rooms[room] = struct{}{}
	}
	for k := range p.dirtyMembers {
		rooms[k.room] = struct{}{}
	}
	conns := maps.Clone(p.dirtyConns)
	for conn := range p.conns {
		conns[conn] = struct{}{}
	}
	// The other nodes hear every leave: those not yet published, and one
	// for each member still here.
	events := p.events
	for room, rm := range p.local {
		for _, m := range rm {
			events = append(events, presEvent{room: room, ev: hub.PresenceEvent{Member: m}})
		}
	}
	p.init()
	b.mu.Unlock()
	if len(rooms)+len(conns)+len(events) == 0 {
		return nil
	}
	if b.cmdHealth.isDown.Load() || b.subHealth.isDown.Load() {
		b.log.Info("redisbroker: Redis unreachable at Close; this node's presence expires by itself",
			"node", b.node, "ttl", b.opts.PresenceTTL)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	pipe := b.client.Pipeline()
	for room := range rooms {
		pipe.Del(ctx, b.memberKey(b.inst, room))
		pipe.SRem(ctx, b.roomSetKey(room), b.inst)
	}
	for conn := range conns {
		pipe.Del(ctx, b.connKey(conn))
	}
	pipe.Del(ctx, b.aliveKey(b.inst))
	b.publishEvents(ctx, pipe, events)
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Info("redisbroker: could not remove this node's presence at Close; it expires by itself",
			"node", b.node, "ttl", b.opts.PresenceTTL, "error", err)
	}
	return nil
}
