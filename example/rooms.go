package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
)

// room serves /ws/rooms/{room}: each text message is sent unchanged to
// every other member of the room, on every instance sharing -redis.
//
// The optional ?name= query names the member in presence lists
// (GET /rooms/{room}/presence); it changes nothing on the socket, so any
// client (the chat page, wscat, a checker) speaks the same protocol.
//
// Once joined, the handler detaches the connection (wsroute's
// Conn.Detach) and returns: a member waiting for its room keeps no
// handler goroutine, which is most of what an idle member costs.
func (a *app) room(ctx context.Context, c *wsroute.Conn) error {
	room := c.Param("room")
	if name := cleanName(c.Query("name")); name != "" {
		c.Set(nameKey, name)
	}
	if err := c.Accept(ctx); err != nil {
		return err
	}
	if err := join(a.rooms, c, room); err != nil {
		return err
	}
	return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
		if err := textOnly(m); err != nil {
			return err
		}
		return broadcastError(a.rooms.BroadcastText(ctx, room, m.Text(), hub.Except(c)))
	})
}

// textOnly refuses a binary message where the protocol has text: the
// connection then closes with 1003, as ReceiveText's error does.
func textOnly(m wsroute.Message) error {
	if m.Type != wsroute.MessageText {
		return fmt.Errorf("%w: got a binary message where text was expected", wsroute.ErrWrongMessageType)
	}
	return nil
}

// nameKey is the Conn.Set key of a room member's display name.
const nameKey = "name"

// maxName bounds a display name, in characters.
const maxName = 40

// cleanName makes a display name safe to store and show: no control
// characters, no surrounding space, at most maxName characters.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxName {
		s = strings.TrimSpace(string(r[:maxName]))
	}
	return s
}

// describe is the rooms hub's Options.Describe: what presence lists show
// of a member, on every instance.
func describe(c *wsroute.Conn) map[string]string {
	if v, ok := c.Get(nameKey); ok {
		return map[string]string{nameKey: v.(string)}
	}
	return nil
}

// presenceMember is one entry of GET /rooms/{room}/presence.
type presenceMember struct {
	ID   string `json:"id"`             // the connection's ID
	Name string `json:"name,omitempty"` // its ?name=, if it gave one
	Node string `json:"node"`           // the instance holding it
}

// presenceResponse is the body of GET /rooms/{room}/presence.
type presenceResponse struct {
	Room    string           `json:"room"`
	Members []presenceMember `json:"members"`
	// LocalOnly is set when Redis could not be asked: the list holds
	// this instance's members only.
	LocalOnly bool `json:"local_only,omitempty"`
}

// presence serves GET /rooms/{room}/presence (h: the hub of
// /ws/rooms/{room}) and GET /live/{room}/presence (the hub of
// /ws/live/{room}): who is in the room, on every instance sharing
// -redis. It is a plain HTTP endpoint beside the room rather than
// messages inside it, so that /ws/rooms/{room} stays a pure relay; the
// chat page reads it once per connection and follows the presence
// frames of /ws/live/{room} from there.
func (a *app) presence(h *hub.Hub) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		resp := presenceResponse{Room: room, Members: []presenceMember{}}
		members, err := h.Presence(ctx, room)
		if err != nil {
			// Redis is unreachable (the broker has said so in the log):
			// this instance still knows its own members.
			resp.LocalOnly = true
			members = nil
			for _, c := range h.Members(room) {
				members = append(members, hub.Member{ConnID: c.ID(), Node: h.Node(), Meta: describe(c)})
			}
		}
		for _, m := range members {
			resp.Members = append(resp.Members, presenceMember{ID: m.ConnID, Name: m.Meta[nameKey], Node: m.Node})
		}
		slices.SortFunc(resp.Members, func(x, y presenceMember) int {
			return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.ID, y.ID))
		})
		writeJSON(w, resp)
	}
}

// writeJSON answers with v as JSON, uncached.
func writeJSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
