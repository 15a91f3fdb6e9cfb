// Package natsbroker carries a hub.Hub's rooms across processes on NATS,
// and keeps presence and the history of rooms in JetStream, with
// github.com/nats-io/nats.go and its jetstream package.
//
// Give each Hub a [Broker] on the same NATS (JetStream enabled); that is
// the only change from a single process:
//
//	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
//	h := hub.New(&hub.Options{Broker: natsbroker.New(nc, nil)})
//
// [hub.Hub.Broadcast] (with [hub.Except]), [hub.Hub.SendTo] and
// [hub.Hub.Presence] then reach every node, and with hub.Options.History
// rooms keep their recent messages in JetStream, so that a member that
// comes back recovers what it missed. The Broker never closes the
// connection; the Hub closes the Broker in Shutdown. Give the connection
// nats.MaxReconnects(-1) (the client gives up after 60 attempts by
// default) and do not make it with nats.NoEcho.
//
// # Subjects, stream and buckets
//
// Every name starts with [Options.Prefix] (default "nexio"); names of
// rooms, nodes and connections are written as unpadded base64url, so any
// string is a valid room:
//
//	<prefix>.r.<room>     core subject of a room: live messages
//	<prefix>.n.<node>     core subject of a node: SendTo
//	<prefix>.h.<room>     subject of a room in the history stream
//	<prefix>_history      JetStream stream of every room's history
//	<prefix>_presence     KV bucket: m.<room>.<conn> -> {node, instance, meta}
//	<prefix>_nodes        KV bucket with a TTL: <node>.<instance> heartbeats
//
// # How messages travel
//
// The Hub serves its own members first, then publishes. Each node has one
// wildcard subscription to <prefix>.r.* and one to its own node subject,
// both feeding one queue, so a publisher's messages reach another node's
// Hub in the order they were published, one at a time. A node keeps the
// rooms it has members in and drops the others: Subscribe and
// Unsubscribe cost nothing and never race with a message, but every node
// receives every room's traffic of the prefix (use one prefix per
// application, and several applications, to shard). SendTo finds the node
// holding the connection in this node's copy of the presence bucket.
//
// [Broker.Publish] returns once NATS confirmed it has the message: one
// PING, shared by every Publish in flight, answers for all of them. While
// the connection is down it fails at once with [ErrUnavailable]; when
// NATS does not answer within [Options.Timeout] (1s by default), with
// [ErrTimeout]. The Hub wraps both in [hub.ErrPublish].
//
// A message on a subject (and in the stream) is a compact binary
// envelope, version 1: version, type, origin, room, target, excepted
// connection, epoch, offset, stream sequence, then the data unchanged. A
// node drops what it cannot decode and counts it in [Stats].Malformed.
//
// # History
//
// A room's history is the subject <prefix>.h.<room> of one stream with
// file storage, MaxMsgsPerSubject = History.Size and MaxAge =
// History.TTL, so a nats-server restart keeps history and epochs.
// [Broker.Append] assigns a message's offset atomically with storing it:
// it writes with JetStream's expected-last-subject-sequence set to the
// room's last message, so of two nodes appending at once JetStream
// refuses one, which reads the new last message and tries again
// ([Stats].Conflicts). Every node thus agrees on every position. The
// epoch is stored in each message: a room with no kept message (a new
// room, a stream deleted or lost with a server's data, a history that
// expired) starts a new random epoch, so a position of a lost history
// never passes for a current one.
//
// After storing it, Append publishes the message with its position on
// the room's core subject, to every node including its own. A node
// delivers a room's messages in Position order: a message whose offset
// jumps is preceded by the missing ones, read back from the stream
// ([Stats].Filled) one get at a time from the stream's leader, without a
// consumer (see "Delivery guarantees"); after a reconnect, the node reads
// what was appended to its rooms meanwhile without waiting for a later
// message, and tries again every Options.Timeout while JetStream cannot
// answer yet. A node's deliveries of a room start with the first message
// of it that reaches the node after Subscribe: live messages of
// different nodes may reach it out of offset order, so of messages
// appended at the moment a room is subscribed, the earliest may be
// skipped (a member joining with hub.Hub.JoinFrom gets them from
// History).
//
// Two differences from redisbroker follow from JetStream's limits:
// MaxAge applies to each message, so a busy room's history also loses
// messages older than TTL (Redis expires a room's history TTL after its
// last message); and the stream's limits are the stream's, not the
// room's: every node must use the same hub.Options.History, or each
// Append with other limits updates the stream.
//
// # Presence
//
// Each node writes its members to the presence bucket, as they join and
// leave, from a goroutine of its own ([hub.Hub.Join] never waits on
// NATS), and writes a heartbeat to the nodes bucket every
// [Options.Heartbeat], on another goroutine, so that neither writing
// members nor delivering messages delays it. That bucket's TTL
// ([Options.PresenceTTL], 6s by default) removes the heartbeat of a node
// that stopped without saying so (killed, frozen, cut off); nats-server
// 2.9 has no per-key TTL, so every node sweeps, each Heartbeat, the
// members whose node's heartbeat is gone (read key by key from the
// bucket's leader), deleting each with the revision it saw (one delete
// succeeds). The sweep gets at most half a Heartbeat, so it never holds
// the next heartbeat back. A live node whose members were swept (its
// heartbeat came late) sees the deletes and writes them again.
// Members of a dead node disappear within PresenceTTL plus one Heartbeat:
// 8s with the defaults.
//
// Every node watches the presence bucket and keeps a copy in memory:
// [Broker.Members] reads it without a round trip (a node's own members at
// once, the others' a round trip after their change), and each change
// reaches the Hub as a presence event, leaves of swept members included.
// After a reconnect the node rewrites all its members and reads the
// whole bucket again, reporting the differences. A watcher (a JetStream
// consumer) can stop hearing the bucket without an error, as it did
// while a cluster moved the bucket's leader: at each heartbeat the node
// reads the bucket's last sequence, and when a change written before the
// previous reading has not reached the watcher, it makes a new one (which
// reads every key again), at every heartbeat until one delivers it.
//
// # When NATS is down
//
// Local delivery is the Hub's and goes on. The Broker logs one warning
// when the connection is lost and one line when it is back; [Stats]
// counts outages and reconnections. Publish and Append fail at once
// while the connection is down. The NATS client resubscribes by itself
// on reconnect. Appends fail for a moment after a restart, until
// JetStream has recovered its stream (about 1s in the restart test).
//
// # Delivery guarantees
//
//   - Rooms with history: every message whose Append returned a position
//     reaches every node subscribed to the room, once, in Position order,
//     unless the stream no longer keeps it when the gap is noticed
//     (trimmed to Size or older than TTL; counted in [Stats].Missed).
//     An Append that failed with ErrUnavailable was not stored; one that
//     failed with ErrTimeout may have been.
//   - Other messages: core NATS delivers at most once. A nil error from
//     Publish means NATS had the message; a node that was disconnected at
//     that moment (its own network blip) misses it, unnoticed. A node
//     whose receiving queue overflows (65536 messages) drops messages and
//     counts them in [Stats].Dropped.
//   - A NATS cluster that loses a server: clients fail over to another
//     server of the URL list; the stream and buckets, created with
//     [Options.Replicas] = 3, keep their data and elect new leaders, and
//     Append carries on in the same epoch (the cluster test kills the
//     server a node is connected to, then a node misses messages while it
//     fails over too, and every append that succeeded reaches both nodes).
//     While nats-server 2.9 elects new leaders, Append and History fail
//     for a few seconds (2 to 8 s in the test's runs). Making a consumer
//     kept failing now and then for as long as the lost server stayed
//     down (in our runs, about one attempt in three hung until its
//     timeout, tens of seconds after the loss), so gap filling and the
//     sweep read with single gets instead, and History falls back to them
//     when its consumer cannot be made in half of Options.Timeout;
//     presence changes, which a watcher consumer carries, reached the
//     other nodes 0 to 13 s after being written in the test's runs.
//
// # Goroutines
//
// [Broker.Open] (called by hub.New) starts six goroutines, owned by the
// Broker and ended by [Broker.Close], which waits for them: the receiver
// (delivers, fills gaps), the status follower (outages, reconnects), the
// presence writer (members), the heartbeat (heartbeats, sweeps, the
// watcher's watchdog; apart so that writing many members never delays
// it), the presence watcher, and the publish confirmer. The heartbeat
// also starts, at most once a minute and one at a time, a short-lived
// goroutine that purges old delete markers from the presence bucket,
// bounded by Options.Timeout; Close waits for it too.
//
// # Testing
//
// The package's tests use a real NATS with JetStream at NEXIO_NATS_URL
// (default nats://127.0.0.1:4222) and skip, saying how to start one, when
// it does not answer, unless NEXIO_REQUIRE_NATS=1, which makes them fail.
// The restart, data-loss and cluster tests start private nats-server
// processes (NEXIO_NATS_SERVER or $PATH) on free ports, with their
// stores in temporary directories. They ran against nats-server 2.9.10.
package natsbroker
