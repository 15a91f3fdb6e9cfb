package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// /ws/live/{room}: rooms that survive a blink. Every message a client
// sends is published to the room with a position (epoch, offset) that
// every member on every instance sees the same; a client that reconnects
// with since=<epoch>:<offset> gets what it missed, exactly once and in
// order, or is told plainly that it cannot (recovered:false).
//
// The wire protocol, all text frames of JSON:
//
//	{"type":"message","room":R,"epoch":E,"offset":N,"data":TEXT}
//	{"type":"sync","room":R,"epoch":E,"offset":N,"recovered":B,"missed":K}
//	{"type":"presence","room":R,"event":"join"|"leave","member":{"id":ID,"name":NAME}}

const (
	// liveHistoryTTL is how long a live room's history outlives its last
	// message.
	liveHistoryTTL = 10 * time.Minute
	// maxLast bounds last=n: a client that wants more reads it page by
	// page from its own store, not from a WebSocket handshake.
	maxLast = 100
	// maxEpoch bounds the epoch of since=: epochs the hub and the brokers
	// make are far shorter.
	maxEpoch = 64
)

// liveQuery is the parsed query of /ws/live/{room}.
type liveQuery struct {
	since    hub.Position // resume after this message (hasSince)
	hasSince bool
	last     int    // the last n kept messages first
	name     string // display name for presence
}

// errLiveQuery is the reason a bad query is refused with: it is sent to
// the client as a close reason, so it says what to send instead.
type errLiveQuery string

func (e errLiveQuery) Error() string { return string(e) }

// parseLiveQuery reads since=, last= and name=. since and last exclude
// each other; neither means live only.
func parseLiveQuery(q url.Values) (liveQuery, error) {
	var lq liveQuery
	for _, k := range []string{"since", "last", "name"} {
		if len(q[k]) > 1 {
			return lq, errLiveQuery(k + "= given more than once")
		}
	}
	if q.Has("since") && q.Has("last") {
		return lq, errLiveQuery("give since= or last=, not both")
	}
	if q.Has("since") {
		s := q.Get("since")
		i := strings.LastIndexByte(s, ':')
		if i <= 0 || i > maxEpoch {
			return lq, errLiveQuery("bad since=: want <epoch>:<offset>, as in the sync frame")
		}
		off, err := strconv.ParseUint(s[i+1:], 10, 64)
		if err != nil {
			return lq, errLiveQuery("bad since=: the offset must be a whole number >= 0")
		}
		lq.since = hub.Position{Epoch: s[:i], Offset: off}
		lq.hasSince = true
	}
	if q.Has("last") {
		n, err := strconv.Atoi(q.Get("last"))
		if err != nil || n < 0 || n > maxLast {
			return lq, errLiveQuery(fmt.Sprintf("bad last=: want a whole number from 0 to %d", maxLast))
		}
		lq.last = n
	}
	lq.name = cleanName(q.Get("name"))
	return lq, nil
}

// messageFrame is what every member receives for each message, live or
// replayed.
type messageFrame struct {
	Type   string `json:"type"` // "message"
	Room   string `json:"room"`
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
	Data   string `json:"data"`
}

// syncFrame follows the replay: where the member now stands.
type syncFrame struct {
	Type      string `json:"type"` // "sync"
	Room      string `json:"room"`
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Recovered bool   `json:"recovered"`
	Missed    int    `json:"missed"`
}

// presenceFrame tells every member of a room that someone joined or left.
type presenceFrame struct {
	Type   string     `json:"type"` // "presence"
	Room   string     `json:"room"`
	Event  string     `json:"event"` // "join" or "leave"
	Member liveMember `json:"member"`
}

// liveMember is who a presence frame is about.
type liveMember struct {
	ID   string `json:"id"`   // the connection's ID
	Name string `json:"name"` // its name=, or its ID without one
}

// frame encodes v as compact JSON, without escaping <, > and & (the
// clients are not HTML parsers, and the bytes stay readable in logs).
func frame(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // the frames are plain structs of strings and numbers
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// stampLive is the live hub's Options.Stamp: it builds the message frame
// once per message, so that a replayed message is byte-identical to its
// live delivery, on every instance.
func stampLive(room string, pos hub.Position, _ wsroute.MessageType, data []byte) (wsroute.MessageType, []byte) {
	return wsroute.MessageText, frame(messageFrame{
		Type: "message", Room: room, Epoch: pos.Epoch, Offset: pos.Offset, Data: string(data),
	})
}

// liveSeam is the live hub's Options.Seam: the sync frame, which the hub
// places right after the replayed messages and before any live one.
// r.Position is the seam's, so live messages continue at its offset + 1.
// A since= the demo refuses to honour (-history 0) is reported as not
// recovered through recoveredKey.
func liveSeam(room string, c *wsroute.Conn, r hub.Recovery) (wsroute.MessageType, []byte) {
	if v, ok := c.Get(recoveredKey); ok {
		r.Recovered = v.(bool)
	}
	// From now on presence frames reach c, after this one (SendTo
	// waits behind the replay and the seam). Marked here, with the
	// room's order held, not when JoinFrom returns: a join that
	// happens in between must not be lost.
	c.Set(syncedKey, true)
	return wsroute.MessageText, frame(syncFrame{
		Type: "sync", Room: room, Epoch: r.Position.Epoch, Offset: r.Position.Offset,
		Recovered: r.Recovered, Missed: r.Missed,
	})
}

// recoveredKey is the Conn.Set key that overrides what the sync frame
// says of recovery, set by joinLive before JoinFrom when it knows better
// than the hub: a last= or live-only join promises nothing to recover.
const recoveredKey = "live.recovered"

// syncedKey is the Conn.Set key marking a live member whose sync frame
// is queued (set by liveSeam): presence frames reach it only from then
// on, so that the replay comes first. What happened before, it reads from
// GET /live/{room}/presence.
const syncedKey = "live.synced"

// livePresence is the live hub's Options.OnPresence: a join or leave on
// any instance becomes a presence frame to this instance's members of
// the room (every instance does the same for its own).
func (a *app) livePresence(room string, e hub.PresenceEvent) {
	ev := "leave"
	if e.Joined {
		ev = "join"
	}
	who := liveMember{ID: e.Member.ConnID, Name: e.Member.Meta[nameKey]}
	if who.Name == "" {
		who.Name = who.ID
	}
	b := frame(presenceFrame{Type: "presence", Room: room, Event: ev, Member: who})
	for _, c := range a.liveRooms.Members(room) {
		if _, ok := c.Get(syncedKey); !ok || c.ID() == e.Member.ConnID {
			continue // not yet synced, or its own join
		}
		// Local members: queued, never written here. A member that
		// just left is not found: nothing to do.
		a.liveRooms.SendTo(context.Background(), c.ID(), wsroute.MessageText, b)
	}
}

// liveRoom serves /ws/live/{room}; see the top of this file.
func (a *app) liveRoom(ctx context.Context, c *wsroute.Conn) error {
	room := c.Param("room")
	q, err := parseLiveQuery(c.URL().Query())
	if err != nil {
		// Before Accept, a CloseError accepts and closes at once: a
		// browser can read the reason, which an HTTP status would hide.
		return &wsroute.CloseError{Code: wsroute.StatusPolicyViolation, Reason: err.Error()}
	}
	if q.name != "" {
		c.Set(nameKey, q.name)
	}
	if err := c.Accept(ctx); err != nil {
		return err
	}
	err = a.joinLive(ctx, c, room, q)
	switch {
	case errors.Is(err, hub.ErrConnClosed):
		return nil
	case errors.Is(err, hub.ErrClosed):
		return goingAway
	case err != nil:
		// The history could not be read (Redis is down): the client
		// retries after a pause, and resumes then.
		a.log.Warn("live room history unavailable", "room", room, "conn", c.ID(), "error", err)
		return storeDown
	}
	// The hub queued the sync frame (liveSeam) behind the replay and
	// before any live message. Presence frames follow from now on.
	// The connection is detached, as on /ws/rooms/{room}: an idle
	// member keeps no handler goroutine.
	return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		if err := textOnly(m); err != nil {
			return err
		}
		data := m.Data
		if a.liveHistory == 0 {
			// The hub stamps only messages it keeps: without history
			// the frame is built here, with no position.
			_, data = stampLive(room, hub.Position{}, wsroute.MessageText, data)
		}
		_, err := a.liveRooms.Publish(ctx, room, wsroute.MessageText, data)
		switch {
		case errors.Is(err, hub.ErrClosed):
			return goingAway
		case err != nil:
			// Not stored, so delivered nowhere (Redis is down). The
			// sender got no copy: closing makes it reconnect after a
			// pause and send the message again, rather than wait for
			// a copy that will never come.
			a.log.Warn("live message not published", "room", room, "conn", c.ID(), "error", err)
			return storeDown
		}
		return nil
	})
}

// storeDown ends a connection whose room's history cannot be read now.
var storeDown = &wsroute.CloseError{Code: wsroute.StatusTryAgainLater, Reason: "history unavailable, try again later"}

// joinLive joins c to room as q asks. The hub hands c the replay and
// then the sync frame (liveSeam).
func (a *app) joinLive(ctx context.Context, c *wsroute.Conn, room string, q liveQuery) error {
	h := a.liveRooms
	if a.liveHistory == 0 {
		// Nothing is kept: live only, and a since is never honoured.
		c.Set(recoveredKey, !q.hasSince)
		_, err := h.JoinFrom(c, room, hub.Position{})
		return err
	}
	if q.hasSince {
		_, err := h.JoinFrom(c, room, q.since)
		return err
	}
	// last=n, or live only (n = 0): join after the room's head less n
	// messages. Whatever is published between reading the head and
	// joining is replayed rather than lost, and the sync frame stands
	// at the room's newest message, on any instance. If the oldest of
	// them expired, or the store began a new epoch, meanwhile, c joins
	// live: last= promised no more than what is kept, so the sync frame
	// says recovered all the same.
	c.Set(recoveredKey, true)
	kept, head, err := h.History(ctx, room, hub.Position{}, 1)
	if err != nil {
		return err
	}
	from := head
	if q.last > 0 && len(kept) > 0 && kept[0].Position.Epoch == head.Epoch {
		from.Offset -= min(uint64(q.last), head.Offset)
		from.Offset = max(from.Offset, kept[0].Position.Offset-1)
	}
	_, err = h.JoinFrom(c, room, from)
	return err
}
