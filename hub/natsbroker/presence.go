package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexio-go/nexio/hub"
)

// presence is this node's view of who is where: its own members (the
// truth, kept in memory) and every node's members as read from the
// presence bucket.
type presence struct {
	mu     sync.Mutex
	local  map[string]map[string]hub.Member // room -> conn ID -> member, this node's
	dirty  map[memberKey]struct{}           // local changes not yet written
	all    map[string]entry                 // bucket key -> member, every node's
	byConn map[string]connRef               // conn ID -> holder, from local and all

	kvMu  sync.Mutex
	pres  jetstream.KeyValue // the members bucket, nil until created
	nodes jetstream.KeyValue // the heartbeat bucket, nil until created
}

type memberKey struct{ room, conn string }

// entry is one member as stored in the presence bucket.
type entry struct {
	room string
	m    hub.Member
	inst string
	rev  uint64
}

type connRef struct {
	node string
	n    int // rooms it is listed in
}

// storedMember is the JSON value of a member's key.
type storedMember struct {
	Node string            `json:"n"`
	Inst string            `json:"i"`
	Meta map[string]string `json:"m,omitempty"`
}

func (p *presence) init() {
	p.local = make(map[string]map[string]hub.Member)
	p.dirty = make(map[memberKey]struct{})
	p.all = make(map[string]entry)
	p.byConn = make(map[string]connRef)
}

func (p *presence) ref(conn, node string, d int) {
	r := p.byConn[conn]
	r.n += d
	if d > 0 {
		r.node = node
	}
	if r.n <= 0 {
		delete(p.byConn, conn)
		return
	}
	p.byConn[conn] = r
}

func (p *presence) nodeOf(conn string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.byConn[conn]
	return r.node, ok
}

func (b *Broker) memberKey(room, conn string) string { return "m." + token(room) + "." + token(conn) }

func parseMemberKey(k string) (room, conn string, ok bool) {
	rest, found := strings.CutPrefix(k, "m.")
	if !found {
		return "", "", false
	}
	rt, ct, found := strings.Cut(rest, ".")
	if !found {
		return "", "", false
	}
	room, ok1 := untoken(rt)
	conn, ok2 := untoken(ct)
	return room, conn, ok1 && ok2
}

// AddMember records that m joined room; implements hub.Broker. It never
// blocks: the member is listed by this node at once, and the presence
// goroutine writes it to the presence bucket, from where every node's
// watcher reads it.
func (b *Broker) AddMember(_ context.Context, room string, m hub.Member) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	m.Node = b.node
	p := &b.pres
	p.mu.Lock()
	ms := p.local[room]
	if ms == nil {
		ms = make(map[string]hub.Member)
		p.local[room] = ms
	}
	if _, ok := ms[m.ConnID]; !ok {
		p.ref(m.ConnID, b.node, 1)
	}
	ms[m.ConnID] = m
	p.dirty[memberKey{room, m.ConnID}] = struct{}{}
	p.mu.Unlock()
	kick(b.presKick)
	return nil
}

// RemoveMember records that m left room; implements hub.Broker. It never
// blocks.
func (b *Broker) RemoveMember(_ context.Context, room string, m hub.Member) error {
	if err := b.isOpen(); err != nil {
		return err
	}
	p := &b.pres
	p.mu.Lock()
	if ms := p.local[room]; ms != nil {
		if _, ok := ms[m.ConnID]; ok {
			delete(ms, m.ConnID)
			p.ref(m.ConnID, b.node, -1)
			if len(ms) == 0 {
				delete(p.local, room)
			}
		}
	}
	p.dirty[memberKey{room, m.ConnID}] = struct{}{}
	p.mu.Unlock()
	kick(b.presKick)
	return nil
}

// Members lists room's members on every node; implements hub.Broker.
// This node's own are listed at once; other nodes' as this node's
// watcher last read them from the presence bucket (a round trip behind
// their joins and leaves, and empty while that bucket was never read).
// It does not wait on NATS.
func (b *Broker) Members(_ context.Context, room string) ([]hub.Member, error) {
	if err := b.isOpen(); err != nil {
		return nil, err
	}
	p := &b.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []hub.Member
	for _, m := range p.local[room] {
		out = append(out, m)
	}
	for _, e := range p.all {
		if e.room == room && e.inst != b.inst {
			out = append(out, e.m)
		}
	}
	return out, nil
}

// buckets returns the presence and heartbeat buckets, creating them if
// needed.
func (b *Broker) buckets(ctx context.Context) (jetstream.KeyValue, jetstream.KeyValue, error) {
	p := &b.pres
	p.kvMu.Lock()
	defer p.kvMu.Unlock()
	if p.pres != nil && p.nodes != nil {
		return p.pres, p.nodes, nil
	}
	open := func(cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		kv, err := b.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return b.js.KeyValue(ctx, cfg.Bucket)
		}
		return kv, err
	}
	var err error
	if p.pres == nil {
		p.pres, err = open(jetstream.KeyValueConfig{
			Bucket: b.presBucket, Description: "nexio: members of rooms, per node",
			Storage: jetstream.FileStorage, Replicas: b.opts.Replicas,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	p.nodes, err = open(jetstream.KeyValueConfig{
		Bucket: b.nodeBucket, Description: "nexio: node heartbeats",
		Storage: jetstream.FileStorage, Replicas: b.opts.Replicas, TTL: b.opts.PresenceTTL,
	})
	if err != nil {
		return nil, nil, err
	}
	return p.pres, p.nodes, nil
}

func (b *Broker) heartbeatKey() string { return token(b.node) + "." + b.inst }

// runPresence writes this node's members: their joins and leaves as
// they come, and everything again after a reconnect (or when the node
// sees its own members swept).
func (b *Broker) runPresence() {
	defer b.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.presKick:
		case <-retry.C:
		case <-b.resync:
			b.pres.mu.Lock()
			for room, ms := range b.pres.local {
				for conn := range ms {
					b.pres.dirty[memberKey{room, conn}] = struct{}{}
				}
			}
			b.pres.mu.Unlock()
		}
		if b.nc.Status() != nats.CONNECTED || !b.beating.Load() {
			retry.Reset(b.opts.Heartbeat)
			continue
		}
		ctx, cancel := b.bounded(b.ctx)
		pres, _, err := b.buckets(ctx)
		cancel()
		if err == nil {
			err = b.writeDirty(pres)
		}
		if err != nil && b.ctx.Err() == nil {
			b.stats.presenceErrors.Add(1)
			b.log.Debug("natsbroker: presence write failed; retrying", "node", b.node, "error", err)
			retry.Reset(b.opts.Heartbeat / 4)
		}
	}
}

// runHeartbeat writes this node's heartbeat every Heartbeat, on a
// goroutine of its own so that writing many members never delays it.
// After each heartbeat it sweeps the members of nodes whose heartbeat
// expired and checks that the presence watcher still hears the bucket;
// that work gets at most half a Heartbeat, so that it cannot delay the
// next heartbeat however slow NATS answers.
func (b *Broker) runHeartbeat() {
	defer b.wg.Done()
	tick := time.NewTicker(b.opts.Heartbeat)
	defer tick.Stop()
	var lastPurge time.Time
	var dog watchdog
	for {
		if b.nc.Status() == nats.CONNECTED {
			ctx, cancel := b.bounded(b.ctx)
			pres, nodes, err := b.buckets(ctx)
			if err == nil {
				_, err = nodes.Put(ctx, b.heartbeatKey(), []byte(b.node))
			}
			cancel()
			if err == nil && !b.beating.Swap(true) {
				kick(b.presKick) // members may be written now
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(b.ctx, min(b.opts.Timeout, b.opts.Heartbeat/2))
				err = b.sweep(ctx, pres)
				// A watcher still reading the initial values is judged by
				// its own stall timer (see watch), not here.
				if err == nil && dog.deaf(ctx, pres, b.watched.Load()) && !b.watchStarting.Load() {
					b.log.Debug("natsbroker: presence watcher missed a change; making a new one", "node", b.node)
					kick(b.rewatch)
				}
				cancel()
				if err == nil && time.Since(lastPurge) > time.Minute {
					lastPurge = time.Now()
					b.purge(pres)
				}
			}
			if err != nil && b.ctx.Err() == nil {
				b.stats.presenceErrors.Add(1)
				b.log.Debug("natsbroker: heartbeat failed; retrying", "node", b.node, "error", err)
			}
		}
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
		case <-b.rebeat:
		}
	}
}

// purge removes the presence bucket's delete markers older than a
// minute (each leave writes one), on a goroutine of its own: it reads
// every key, which takes a while with many members, and the heartbeat
// must not wait for it. At most one runs at a time; Close waits for it.
func (b *Broker) purge(pres jetstream.KeyValue) {
	if !b.purging.CompareAndSwap(false, true) {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.purging.Store(false)
		ctx, cancel := b.bounded(b.ctx)
		defer cancel()
		pres.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(time.Minute))
	}()
}

// watchdog tells when the presence watcher stopped hearing the bucket
// without saying so, as a watcher's consumer can while a cluster moves
// the bucket's leader: it reads the bucket's last sequence at each
// heartbeat; a change written between two readings must have reached
// the watcher by the next one, and it stays owed (a new watcher is made
// at every heartbeat) until one delivers it.
type watchdog struct {
	prev, last uint64    // the last two readings of the bucket's last sequence
	owed       uint64    // a revision the watcher must reach; 0: none
	owedSince  time.Time // when owed was first missed
}

// owedFor bounds how long a revision stays owed: after a minute its
// message, if it was a delete, may have been purged, and no watcher
// could deliver it.
const owedFor = 30 * time.Second

// deaf takes a new reading and reports whether the watcher, which has
// seen up to revision seen, missed a change. A failed reading says
// nothing.
func (d *watchdog) deaf(ctx context.Context, pres jetstream.KeyValue, seen uint64) bool {
	st, err := pres.Status(ctx)
	if err != nil {
		return false
	}
	kst, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || kst.StreamInfo() == nil {
		return false
	}
	now := kst.StreamInfo().State.LastSeq
	// d.last was written after the reading before it (d.prev), a
	// heartbeat ago at least: a live watcher, new or old, has seen it (or
	// a later revision of its key) by now, and no purge has removed it.
	if d.prev != 0 && d.last > d.prev && d.last > d.owed {
		if d.owed == 0 {
			d.owedSince = time.Now()
		}
		d.owed = d.last
	}
	d.prev, d.last = d.last, now
	if d.owed != 0 && (seen >= d.owed || time.Since(d.owedSince) > owedFor) {
		d.owed = 0
	}
	return d.owed != 0
}

// writeDirty writes what changed locally: a key for each member, a
// delete for each member gone. What fails stays dirty.
func (b *Broker) writeDirty(pres jetstream.KeyValue) error {
	p := &b.pres
	p.mu.Lock()
	type op struct {
		k   memberKey
		val []byte // nil: delete
	}
	ops := make([]op, 0, len(p.dirty))
	for k := range p.dirty {
		o := op{k: k}
		if m, ok := p.local[k.room][k.conn]; ok {
			o.val, _ = json.Marshal(storedMember{Node: b.node, Inst: b.inst, Meta: m.Meta})
		}
		ops = append(ops, o)
	}
	clear(p.dirty)
	p.mu.Unlock()
	for i, o := range ops {
		ctx, cancel := b.bounded(b.ctx)
		var err error
		if o.val != nil {
			_, err = pres.Put(ctx, b.memberKey(o.k.room, o.k.conn), o.val)
		} else {
			err = pres.Delete(ctx, b.memberKey(o.k.room, o.k.conn))
		}
		cancel()
		if err != nil {
			p.mu.Lock()
			for _, o := range ops[i:] {
				p.dirty[o.k] = struct{}{}
			}
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// sweep deletes the members of nodes whose heartbeat expired. Several
// nodes may sweep at once: each delete names the revision it saw, so
// only one succeeds and every node sees one leave.
//
// It reads each heartbeat it needs from the bucket's leader, one key at
// a time, rather than listing the bucket: listing makes a consumer, and
// after a cluster lost a server, making consumers kept failing for
// longer than a heartbeat lives (nats-server 2.9), which left the sweep,
// and the heartbeat written on the same goroutine, waiting.
func (b *Broker) sweep(ctx context.Context, pres jetstream.KeyValue) error {
	// The members first, then the heartbeats: a member listed here was
	// written after its node's heartbeat, so a live node's heartbeat is
	// found by the reads after.
	p := &b.pres
	p.mu.Lock()
	cands := make(map[string]entry)
	for k, e := range p.all {
		if e.inst != b.inst {
			cands[k] = e
		}
	}
	p.mu.Unlock()
	live := make(map[string]bool) // instance -> heartbeat found
	for k, e := range cands {
		alive, ok := live[e.inst]
		if !ok {
			found, err := b.leaderHas(ctx, "KV_"+b.nodeBucket, "$KV."+b.nodeBucket+"."+token(e.m.Node)+"."+e.inst)
			if err != nil {
				return err
			}
			alive, live[e.inst] = found, found
		}
		if alive {
			continue
		}
		if err := pres.Delete(ctx, k, jetstream.LastRevision(e.rev)); err == nil {
			b.stats.expired.Add(1)
		}
	}
	return nil
}

// leaderHas reports whether stream keeps a message on subj, as its
// leader says: a replica answering a direct get may lag behind.
func (b *Broker) leaderHas(ctx context.Context, stream, subj string) (bool, error) {
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	m, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return false, err
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return false, fmt.Errorf("reading %s: %w", subj, err)
	}
	switch {
	case resp.Error == nil:
		return true, nil
	case resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return false, nil
	default:
		return false, resp.Error
	}
}

// removePresence deletes this node's members and heartbeat at Close.
func (b *Broker) removePresence() error {
	if b.nc.Status() != nats.CONNECTED {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	p := &b.pres
	p.kvMu.Lock()
	pres, nodes := p.pres, p.nodes
	p.kvMu.Unlock()
	if pres == nil || nodes == nil {
		return nil
	}
	p.mu.Lock()
	var keys []string
	for room, ms := range p.local {
		for conn := range ms {
			keys = append(keys, b.memberKey(room, conn))
		}
	}
	p.mu.Unlock()
	for _, k := range keys {
		if err := pres.Delete(ctx, k); err != nil {
			return natsErr("removing presence", err)
		}
	}
	if err := nodes.Delete(ctx, b.heartbeatKey()); err != nil {
		return natsErr("removing the heartbeat", err)
	}
	return nil
}

// runWatcher keeps p.all: it watches the presence bucket, and turns each
// change into a presence event for the receiver. After a reconnect it
// starts again, reading every key, and reports the differences.
func (b *Broker) runWatcher() {
	defer b.wg.Done()
	retry := 100 * time.Millisecond
	for b.ctx.Err() == nil {
		if b.watch() {
			retry = 100 * time.Millisecond
			continue
		}
		select {
		case <-b.ctx.Done():
			return
		case <-b.rewatch:
		case <-time.After(retry):
			retry = min(2*retry, 2*time.Second)
		}
	}
}

// watch runs one watcher until it breaks or the status follower (after
// a reconnect) or the heartbeat's watchdog (after a missed change) asks
// for a new one; it reports whether it got as far as the end of the
// initial values.
func (b *Broker) watch() bool {
	if b.nc.Status() != nats.CONNECTED {
		return false
	}
	ctx, cancel := b.bounded(b.ctx)
	pres, _, err := b.buckets(ctx)
	cancel()
	if err != nil {
		return false
	}
	wctx, wcancel := context.WithCancel(b.ctx)
	defer wcancel()
	w, err := pres.Watch(wctx, "m.>")
	if err != nil {
		return false
	}
	defer w.Stop()
	snap := make(map[string]entry)
	initial := true
	b.watchStarting.Store(true)
	defer b.watchStarting.Store(false)
	var rev uint64 // the newest revision this watcher delivered
	// A watcher whose consumer was created while the cluster had no
	// leader for the bucket may never start: it is given up on after a
	// while, and made again.
	stall := time.NewTimer(4 * b.opts.Timeout)
	defer stall.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return true
		case <-stall.C:
			if initial {
				b.log.Debug("natsbroker: presence watcher did not start; making a new one", "node", b.node)
				return false
			}
		case <-b.rewatch:
			return !initial
		case kve, ok := <-w.Updates():
			if !ok {
				return !initial
			}
			if kve == nil {
				initial = false
				b.watched.Store(rev) // this watcher hears the bucket up to here
				b.watchStarting.Store(false)
				b.replace(snap)
				continue
			}
			rev = max(rev, kve.Revision())
			e, ok := b.decodeEntry(kve)
			if initial {
				if ok {
					snap[kve.Key()] = e
				}
				continue
			}
			b.watched.Store(rev)
			b.apply(kve.Key(), e, ok)
		}
	}
}

func (b *Broker) decodeEntry(kve jetstream.KeyValueEntry) (entry, bool) {
	if kve.Operation() != jetstream.KeyValuePut {
		return entry{}, false
	}
	room, conn, ok := parseMemberKey(kve.Key())
	if !ok {
		return entry{}, false
	}
	var sm storedMember
	if err := json.Unmarshal(kve.Value(), &sm); err != nil || sm.Node == "" {
		return entry{}, false
	}
	return entry{room: room, m: hub.Member{ConnID: conn, Node: sm.Node, Meta: sm.Meta}, inst: sm.Inst, rev: kve.Revision()}, true
}

// apply records one change of key: present (e) or gone.
func (b *Broker) apply(key string, e entry, present bool) {
	p := &b.pres
	p.mu.Lock()
	old, had := p.all[key]
	var ev *hub.Envelope
	switch {
	case present:
		p.all[key] = e
		if !had {
			p.ref(e.m.ConnID, e.m.Node, 1)
			ev = b.event(e, true)
		} else if old.inst != e.inst {
			p.ref(e.m.ConnID, e.m.Node, 0)
		}
	case had:
		delete(p.all, key)
		p.ref(old.m.ConnID, old.m.Node, -1)
		ev = b.event(old, false)
		if _, mine := p.local[old.room][old.m.ConnID]; mine && old.inst == b.inst {
			// Swept while this node lives (its heartbeat was late):
			// this node's memory is the truth, write it again.
			p.dirty[memberKey{old.room, old.m.ConnID}] = struct{}{}
			kick(b.presKick)
		}
	}
	p.mu.Unlock()
	b.emit(ev)
}

// replace swaps p.all for a fresh read of the bucket, and reports the
// differences.
func (b *Broker) replace(snap map[string]entry) {
	p := &b.pres
	var evs []*hub.Envelope
	p.mu.Lock()
	for k, old := range p.all {
		if _, ok := snap[k]; !ok {
			p.ref(old.m.ConnID, old.m.Node, -1)
			evs = append(evs, b.event(old, false))
		}
	}
	for k, e := range snap {
		if _, ok := p.all[k]; !ok {
			p.ref(e.m.ConnID, e.m.Node, 1)
			evs = append(evs, b.event(e, true))
		}
	}
	p.all = snap
	p.mu.Unlock()
	for _, ev := range evs {
		b.emit(ev)
	}
}

// event returns the presence event of e, or nil for this node's own.
// The Origin of a change of this node's predecessor (the same name,
// before a restart) is "", so that the hub does not take it for the
// echo of one of its own.
func (b *Broker) event(e entry, joined bool) *hub.Envelope {
	if e.inst == b.inst {
		return nil
	}
	origin := e.m.Node
	if origin == b.node {
		origin = ""
	}
	return &hub.Envelope{Origin: origin, Room: e.room, Presence: &hub.PresenceEvent{Joined: joined, Member: e.m}}
}

func (b *Broker) emit(ev *hub.Envelope) {
	if ev == nil {
		return
	}
	select {
	case b.events <- *ev:
	case <-b.ctx.Done():
	}
}
