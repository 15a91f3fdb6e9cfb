package main

import (
	"net/http"

	"github.com/lxzan/gws"
)

func init() {
	register("gws",
		"lxzan/gws v1.8.9: Upgrader + ReadLoop in the handler, ConcurrentMap of members, gws.Broadcaster",
		func() *impl { return newGws(false) })
	// gws's README "Best Practice" instead starts ReadLoop in a goroutine
	// and returns from the handler, which frees net/http's serving
	// goroutine and its deep stack: the setup that is fair to gws in the
	// idle workload (elsewhere the two run the same code).
	register("gws-go",
		"lxzan/gws v1.8.9 as above, but `go ReadLoop()` and the handler returns (its README's Best Practice); idle only",
		func() *impl { return newGws(true) })
	implWorkloads["gws-go"] = []string{"idle"}
}

// gwsEvents adapts a plain function to gws's event interface; everything
// but OnMessage (and OnOpen/OnClose for members) is gws's builtin no-op.
type gwsEvents struct {
	gws.BuiltinEventHandler
	onOpen    func(*gws.Conn)
	onClose   func(*gws.Conn)
	onMessage func(*gws.Conn, *gws.Message)
}

func (e *gwsEvents) OnOpen(c *gws.Conn) {
	if e.onOpen != nil {
		e.onOpen(c)
	}
}

func (e *gwsEvents) OnClose(c *gws.Conn, err error) {
	if e.onClose != nil {
		e.onClose(c)
	}
}

func (e *gwsEvents) OnMessage(c *gws.Conn, m *gws.Message) {
	if e.onMessage != nil {
		e.onMessage(c, m)
		return
	}
	_ = m.Close()
}

// newGws is lxzan/gws as its chatroom example writes it: an Upgrader per
// endpoint, ReadLoop in the HTTP handler goroutine (it ends when the
// connection does; with goReadLoop, in a goroutine of its own as in its
// README's "Best Practice", and the handler returns), members in gws's
// ConcurrentMap, and broadcasts through gws.NewBroadcaster, which frames
// the message once and queues it on each member's write queue (gws runs a
// writer goroutine only while a member's queue is non-empty).
// Compression is off (the default), as for every implementation here.
func newGws(goReadLoop bool) *impl {
	members := gws.NewConcurrentMap[*gws.Conn, struct{}](16, 128)

	echoUp := gws.NewUpgrader(&gwsEvents{
		onMessage: func(c *gws.Conn, m *gws.Message) {
			defer m.Close()
			_ = c.WriteMessage(m.Opcode, m.Bytes())
		},
	}, nil)
	roomUp := gws.NewUpgrader(&gwsEvents{
		onOpen:  func(c *gws.Conn) { members.Store(c, struct{}{}) },
		onClose: func(c *gws.Conn) { members.Delete(c) },
	}, nil)
	pubUp := gws.NewUpgrader(&gwsEvents{
		onMessage: func(c *gws.Conn, m *gws.Message) {
			// The message buffer goes back to gws's pool on Close, while
			// the members' queued writes may still be pending: copy.
			payload := append([]byte(nil), m.Bytes()...)
			_ = m.Close()
			b := gws.NewBroadcaster(gws.OpcodeText, payload)
			members.Range(func(mc *gws.Conn, _ struct{}) bool {
				_ = b.Broadcast(mc)
				return true
			})
			_ = b.Close()
		},
	}, nil)

	handle := func(up *gws.Upgrader) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			if goReadLoop {
				go c.ReadLoop()
				return
			}
			c.ReadLoop()
		})
	}
	return &impl{
		echo:    handle(echoUp),
		room:    handle(roomUp),
		pub:     handle(pubUp),
		members: members.Len,
	}
}
