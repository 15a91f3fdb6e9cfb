package redisbroker

import (
	"context"
	"maps"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
)

// Presence events: what other nodes learn of a room's joins and leaves,
// besides reading Members.
//
// Each AddMember and RemoveMember queues an event that the presence
// goroutine publishes on the room's channel, in the pipeline that writes
// the change to Redis, so a node that hears a join and reads Members
// finds the member there. A node hears the events of the rooms it has
// members in and hands them to its Hub.
//
// A node that dies publishes nothing. So each node keeps a view of the
// other nodes' members it has told its Hub about (from events and from
// Members), with the presence instance of each, and every heartbeat
// asks Redis whether those instances are alive: each node keeps a key
//
//	P i:<instance>   string: the node's name, expiring PresenceTTL after
//	                 its last heartbeat
//
// When an instance's key has expired, the node delivers a leave for each
// of its members and forgets them. With the defaults (PresenceTTL 6s,
// Heartbeat 2s), the members of a killed node are gone from Members
// within 6s and their leaves are delivered within 8s.
//
// After this node's subscription came back from an outage (it may have
// missed events), it compares its view of each room with Redis, one
// Heartbeat later (time for the other nodes to write their presence
// again, should Redis have restarted empty), and delivers the joins and
// leaves it missed. A node that finds its own key gone at a heartbeat
// (Redis lost it, or this node was cut off longer than PresenceTTL and
// the others gave its members up) writes its presence again and sends
// a "still here" for each member, which the other nodes deliver as a
// join if they had delivered its leave.

// presEvent is a queued presence change of this node.
type presEvent struct {
	room string
	ev   hub.PresenceEvent
	here bool // a join sent again
}

// maxQueuedEvents bounds the events kept while Redis is down; beyond it
// only the last event of each membership is kept.
const maxQueuedEvents = 1 << 16

// queueEventLocked queues a presence change; b.mu must be held.
func (b *Broker) queueEventLocked(room string, m hub.Member, joined, here bool) {
	p := &b.pres
	p.events = append(p.events, presEvent{room: room, ev: hub.PresenceEvent{Joined: joined, Member: m}, here: here})
	if len(p.events) <= maxQueuedEvents {
		return
	}
	last := make(map[memberKey]int, len(p.events))
	for i, e := range p.events {
		last[memberKey{e.room, e.ev.Member.ConnID}] = i
	}
	kept := p.events[:0]
	for i, e := range p.events {
		if last[memberKey{e.room, e.ev.Member.ConnID}] == i {
			kept = append(kept, e)
		}
	}
	clear(p.events[len(kept):])
	p.events = kept
}

// publishEvents queues the PUBLISH of events on pipe.
func (b *Broker) publishEvents(ctx context.Context, pipe redis.Pipeliner, events []presEvent) {
	sharded := b.mode.Load() == modeSharded
	for _, e := range events {
		msg := appendPresence(nil, b.node, e.room, b.inst, e.ev, e.here)
		if sharded {
			pipe.SPublish(ctx, b.roomChannel(e.room), msg)
		} else {
			pipe.Publish(ctx, b.roomChannel(e.room), msg)
		}
	}
}

func (b *Broker) aliveKey(inst string) string { return b.tag + "i:" + inst }

// viewMember is a member of another node as this node's Hub knows it.
type viewMember struct {
	inst string
	m    hub.Member
}

// view is what this node has told its Hub of the other nodes' members,
// in the rooms it has members in; guarded by Broker.mu.
type view struct {
	rooms map[string]map[string]viewMember // room -> connection ID -> member
}

// add records m in room; it reports whether m was not there.
func (v *view) add(room, inst string, m hub.Member) bool {
	if v.rooms == nil {
		v.rooms = make(map[string]map[string]viewMember)
	}
	rm := v.rooms[room]
	if rm == nil {
		rm = make(map[string]viewMember)
		v.rooms[room] = rm
	}
	_, had := rm[m.ConnID]
	rm[m.ConnID] = viewMember{inst: inst, m: m}
	return !had
}

// remove forgets conn in room; it reports whether it was there.
func (v *view) remove(room, conn string) bool {
	rm := v.rooms[room]
	if _, ok := rm[conn]; !ok {
		return false
	}
	delete(rm, conn)
	if len(rm) == 0 {
		delete(v.rooms, room)
	}
	return true
}

// presenceChanged handles another node's presence event: it updates the
// view and hands the event to the Hub. A join sent again reaches the Hub
// only if the member was not in the view.
func (b *Broker) presenceChanged(wm wireMsg) {
	e := wm.e
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	b.mu.Lock()
	if _, ok := b.want[b.roomChannel(e.Room)]; !ok {
		b.mu.Unlock()
		return
	}
	news := true
	if e.Presence.Joined {
		news = b.view.add(e.Room, wm.inst, e.Presence.Member) || !wm.here
	} else {
		b.view.remove(e.Room, e.Presence.Member.ConnID)
	}
	b.mu.Unlock()
	if news {
		b.deliver(e)
	}
}

// learn adds what Members read of room (other nodes' members, by
// instance) to the view, so that their leaves are delivered should
// their node die. Only rooms this node has members in are kept.
func (b *Broker) learnLocked(room string, byInst map[string][]hub.Member) {
	if _, ok := b.want[b.roomChannel(room)]; !ok {
		return
	}
	for inst, ms := range byInst {
		for _, m := range ms {
			b.view.add(room, inst, m)
		}
	}
}

// expireDead delivers a leave for every member of the view whose node's
// presence expired. It skips its turn while this node's own connection
// to Redis is down or came back less than a Heartbeat ago: Redis may
// have restarted empty, and the other nodes have not yet written their
// presence again.
func (b *Broker) expireDead() error {
	if b.recentlyDown(time.Now()) {
		return nil
	}
	b.mu.Lock()
	insts := make(map[string]struct{})
	for _, rm := range b.view.rooms {
		for _, vm := range rm {
			insts[vm.inst] = struct{}{}
		}
	}
	b.mu.Unlock()
	if len(insts) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Heartbeat)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make(map[string]*redis.IntCmd, len(insts))
	for inst := range insts {
		cmds[inst] = pipe.Exists(ctx, b.aliveKey(inst))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	dead := make(map[string]bool)
	for inst, c := range cmds {
		if c.Val() == 0 {
			dead[inst] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	var gone []hub.Envelope
	b.mu.Lock()
	for room, rm := range b.view.rooms {
		for conn, vm := range rm {
			if dead[vm.inst] {
				gone = append(gone, hub.Envelope{Origin: b.originOf(vm.m), Room: room,
					Presence: &hub.PresenceEvent{Member: vm.m}})
				b.view.remove(room, conn)
			}
		}
	}
	b.mu.Unlock()
	for _, e := range gone {
		b.stats.expired.Add(1)
		b.deliver(e)
	}
	if len(gone) > 0 {
		b.log.Info("redisbroker: members of nodes that stopped refreshing their presence left", "node", b.node, "members", len(gone))
	}
	return nil
}

// recentlyDown reports whether either path to Redis is down, or came
// back less than a Heartbeat ago.
func (b *Broker) recentlyDown(now time.Time) bool {
	if b.cmdHealth.isDown.Load() || b.subHealth.isDown.Load() {
		return true
	}
	return b.cmdHealth.settling(b.opts.Heartbeat) || b.subHealth.settling(b.opts.Heartbeat)
}

// resync compares the view of every room this node has members in with
// Redis, and delivers the joins and leaves it missed while its
// subscription was down.
func (b *Broker) resync() error {
	b.mu.Lock()
	var rooms []string
	for ch := range b.want {
		if room, ok := b.roomOf(ch); ok {
			rooms = append(rooms, room)
		}
	}
	b.mu.Unlock()
	if len(rooms) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Heartbeat)
	defer cancel()
	pipe := b.client.Pipeline()
	sets := make([]*redis.StringSliceCmd, len(rooms))
	for i, room := range rooms {
		sets[i] = pipe.SMembers(ctx, b.roomSetKey(room))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	type key struct{ room, inst string }
	hashes := make(map[key]*redis.MapStringStringCmd)
	pipe = b.client.Pipeline()
	for i, room := range rooms {
		for _, inst := range sets[i].Val() {
			if inst != b.inst {
				hashes[key{room, inst}] = pipe.HGetAll(ctx, b.memberKey(inst, room))
			}
		}
	}
	if len(hashes) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	now := make(map[string]map[string]viewMember) // room -> conn -> member, in Redis
	for k, c := range hashes {
		for conn, v := range c.Val() {
			m, ok := decodeStored(conn, v)
			if !ok {
				continue
			}
			if now[k.room] == nil {
				now[k.room] = make(map[string]viewMember)
			}
			now[k.room][conn] = viewMember{inst: k.inst, m: m}
		}
	}

	b.deliverMu.Lock()
	defer b.deliverMu.Unlock()
	var news []hub.Envelope
	b.mu.Lock()
	for _, room := range rooms {
		if _, ok := b.want[b.roomChannel(room)]; !ok {
			continue
		}
		for conn, vm := range b.view.rooms[room] {
			if _, ok := now[room][conn]; !ok {
				b.view.remove(room, conn)
				news = append(news, hub.Envelope{Origin: b.originOf(vm.m), Room: room, Presence: &hub.PresenceEvent{Member: vm.m}})
			}
		}
		for _, vm := range now[room] {
			if b.view.add(room, vm.inst, vm.m) {
				news = append(news, hub.Envelope{Origin: b.originOf(vm.m), Room: room, Presence: &hub.PresenceEvent{Joined: true, Member: vm.m}})
			}
		}
	}
	b.mu.Unlock()
	for _, e := range news {
		b.deliver(e)
	}
	return nil
}

// reannounceLocked queues a "still here" for every local member; b.mu
// must be held.
func (b *Broker) reannounceLocked() {
	for room, rm := range b.pres.local {
		for _, m := range rm {
			m.Meta = maps.Clone(m.Meta)
			b.queueEventLocked(room, m, true, true)
		}
	}
}

// originOf is the Origin of a presence event about m, a member of
// another instance: its node, or "" when that node has this node's name
// (this node's predecessor, before a restart), so that the hub does not
// take the change for the echo of one of its own.
func (b *Broker) originOf(m hub.Member) string {
	if m.Node == b.node {
		return ""
	}
	return m.Node
}
