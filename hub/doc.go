// Package hub broadcasts to rooms of WebSocket connections without ever
// blocking on a client.
//
// The usual broadcast loop (for each client: send, and wait) lets one slow
// client stall everyone, never removes dead clients, and only works in one
// process. A [Hub] gives each member a bounded queue instead:
//
//	h := hub.New(nil)
//	mux.Handle("/ws/rooms/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
//		if err := c.Accept(ctx); err != nil {
//			return err
//		}
//		room := c.Param("room")
//		if err := h.Join(c, room); err != nil {
//			return err
//		}
//		for {
//			msg, err := c.ReceiveText(ctx)
//			if err != nil {
//				return err // the connection ended: it has left its rooms
//			}
//			if err := h.BroadcastText(ctx, room, msg, hub.Except(c)); err != nil {
//				return err
//			}
//		}
//	}))
//
// # Rooms and presence
//
// [Hub.Join] and [Hub.Leave] change membership; a connection leaves all its
// rooms by itself when it ends. Join may be called before Accept: a client
// that has seen its 101 response has missed no broadcast, and a connection
// refused before its handshake never shows as a member. [Hub.Members], [Hub.Count], [Hub.Rooms] and
// [Hub.RoomCounts] describe this process; [Hub.Presence] describes every
// node, with what [Options.Describe] shares of each member.
// [Options.OnJoin] and [Options.OnLeave] report this node's changes as
// they happen; [Options.OnPresence] reports every node's, with a Broker.
//
// A member need not keep its handler running: after Join (or
// [Hub.JoinFrom]) the handler may hand the connection over with
// [wsroute.Conn.Detach] and return. The member stays until the
// connection ends, and an idle one then keeps no handler goroutine,
// which is most of what it costs (on Linux, no goroutine at all).
//
// # Delivery
//
// [Hub.Broadcast] copies the message once and enqueues it for each member:
// memory work on the caller's goroutine, no network write, no allocation
// per member. The hub's writers, at most GOMAXPROCS goroutines that exist
// only while some member has messages queued, then hand each member's
// queue to its socket in one write, each message still its own WebSocket
// message, in broadcast order; that write never waits. A member whose
// socket cannot take its queue at once (a slow or distant client) gets a
// writer goroutine of its own until its queue is empty, which waits for
// the socket ([wsroute.Conn.SendBatch]), so it holds up no other member.
// [Hub.SendTo] reaches one connection by ID.
//
// # Slow consumers
//
// A member's queue holds [Options.QueueMessages] messages or
// [Options.QueueBytes] bytes (256 and 1 MiB by default). When it is full,
// [Options.SlowConsumer] decides: [Disconnect] (the default) closes that
// member with 1008 "slow consumer"; [DropNewest] and [DropOldest] drop
// messages instead. A write that makes no progress for the route's
// wsroute.Options.WriteTimeout (10 s by default) ends the member too.
// Every drop and disconnect is counted in [Hub.Stats] and logged once.
//
// # History and recovery
//
// With [Options.History] set, each room keeps its newest messages, each
// at a [Position] (an epoch and an offset 1, 2, 3 … assigned in one place).
// [Hub.Publish] returns a message's position, [Options.Stamp] lets clients
// see it, and [Hub.JoinFrom] joins a returning member from the last
// position it got: it replays what it missed, then goes live, with no gap
// and no duplicate, or says [Recovery].Recovered is false and replays
// nothing. [Hub.History] lists what is kept. History is off by default and
// then costs nothing.
//
// # Across processes
//
// With [Options.Broker] set, rooms span every process sharing the broker:
// Broadcast, Except, SendTo and Presence work across nodes. The
// hub/redisbroker package implements [Broker] on Redis. With History too,
// the broker keeps the history and must implement [HistoryBroker].
//
// # Shutdown
//
// [Hub.Shutdown] sends 1001 "going away" to every member, refuses new
// joins and broadcasts, and waits for members and writers to finish.
package hub
