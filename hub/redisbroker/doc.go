// Package redisbroker carries a hub.Hub's rooms across processes on Redis
// pub/sub, with github.com/redis/go-redis/v9.
//
// When one process is not enough, run several behind a load balancer and
// give each Hub a [Broker] on the same Redis; that is the only change:
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	h := hub.New(&hub.Options{Broker: redisbroker.New(client, nil)})
//
// [hub.Hub.Broadcast] (with [hub.Except]), [hub.Hub.SendTo] and
// [hub.Hub.Presence] then reach every node, and so do presence events
// (hub.Options.OnPresence). With hub.Options.History, the Broker is the
// Hub's [hub.HistoryBroker]: rooms keep their history in Redis Streams,
// and [hub.Hub.JoinFrom] recovers what a member missed on any node (see
// History). Any [redis.UniversalClient]
// works: a single server, Sentinel (redis.NewFailoverClient) or Redis
// Cluster; the tests cover a single server and a cluster. The Broker
// never closes the client; the Hub closes the Broker in Shutdown.
//
// # Local and global
//
// [hub.Hub.Members], [hub.Hub.Count], [hub.Hub.Rooms] and
// [hub.Hub.RoomCounts] describe this process only: they are memory reads.
// [hub.Hub.Presence] describes every node: it reads Redis through
// [Broker.Members], bounded by [Options.Timeout].
//
// # How messages travel
//
// The Hub serves its own members of a room first, then publishes the
// message on the room's channel. Each node subscribes, over one
// connection whatever the number of rooms and members, to the channels
// of the rooms where it has members (from the first member's join to
// the last one's leave) and to a channel of its own, where messages for
// [hub.Hub.SendTo] arrive: the publisher finds the node holding the
// connection in Redis. A node ignores what it published itself, and
// drops a copy of a message it has already handed over (below), so
// nothing is delivered twice. Messages from one node arrive at another
// in the order they were published.
//
// Every key and channel starts with the hash tag "{prefix}:"
// ([Options.Prefix]), so applications sharing a Redis do not meet:
//
//	{prefix}:r:<room>        channel of a room
//	{prefix}:n:<node>        channel of a node, for SendTo
//	{prefix}:pr:<room>       set: presence instances with members in room
//	{prefix}:pm:<inst>:<room> hash: connection ID -> {"node":…,"meta":…}
//	{prefix}:c:<connID>      string: the node holding the connection
//	{prefix}:i:<inst>        string: a presence instance is alive (its node's name)
//	{prefix}:h:<room>        stream: the kept messages of a room with history
//	{prefix}:he:<room>       string: the epoch of that history
//	{prefix}:ho:<room>       string: the offset of its newest message
//
// A plain message on a channel is a compact binary envelope, version 2:
//
//	byte     version, 2
//	byte     type: 1 text, 2 binary
//	8 bytes  stream, big-endian
//	uvarint  sequence number, from 1
//	uvarint  length, then bytes: origin node
//	uvarint  length, then bytes: room
//	uvarint  length, then bytes: target connection
//	uvarint  length, then bytes: excepted connection
//	rest     the message
//
// Any bytes travel unchanged. The publisher numbers its messages per
// channel, 1, 2, 3…, in a stream it picks at random when it starts
// numbering that channel (at Open, or after the channel was idle for ten
// minutes): a receiver drops a number it has already seen
// ([Stats].Duplicates: go-redis sent a PUBLISH again after its reply was
// lost, and Redis ran it twice) and counts the numbers it skipped
// ([Stats].Missed). A node drops what it cannot decode (an unknown
// version, or a foreign publisher) and counts it in [Stats].Malformed.
// This version still reads version 1, the same without stream and
// number (from a node running an earlier nexio; its messages are not
// checked); a version-1 node drops what this one publishes, so during a
// rolling upgrade the nodes not yet upgraded do not hear the others.
// Messages of rooms with history (which carry their position instead
// of a sequence number) and presence changes travel in version 3, which
// nodes of the previous release drop and count as malformed; their plain
// messages still reach them.
//
// # Presence
//
// Each node writes its members to Redis with a TTL of
// [Options.PresenceTTL] (6s by default) and refreshes it every
// [Options.Heartbeat] (2s). Members of a node that stopped without
// cleaning up (killed, frozen, cut off from Redis) disappear from
// [Broker.Members], and SendTo stops finding them, at most PresenceTTL
// after that node's last heartbeat. A node that shuts down cleanly
// removes its presence at once, unless Redis is unreachable then: its
// entries expire by themselves.
//
// Joins and leaves are recorded in memory and written by a background
// goroutine, so [hub.Hub.Join] never waits on Redis; a node's own
// members appear in its own Presence at once and in the other nodes'
// within a round trip. The node's memory is the truth: a heartbeat that
// finds its entries missing (Redis restarted empty, or an outage outlasted
// the TTL) writes them again.
//
// Presence events. Each join and leave is also published on the room's
// channel, after it is written, and every other node with members in the
// room hands it to its Hub as an Envelope with Presence set. A node that
// dies publishes nothing, so each node remembers the other nodes' members
// its Hub was told of (by events and by Members) and checks at every
// heartbeat whether their nodes' presence is still alive (the i: key);
// for each member of a node whose presence expired, it delivers a leave
// ([Stats].Expired). With the defaults the leaves of a killed node's
// members are delivered within 8s (PresenceTTL plus a Heartbeat). A node
// that closes publishes a leave for each of its members at once. A node
// whose subscription was down compares what it told its Hub with Redis
// a Heartbeat after it is back, and delivers the joins and leaves it
// missed. Redis restarting empty does not make members flap: checks
// pause for a Heartbeat after this node reconnects, and a node that
// finds its presence gone writes it again and sends a "still here" for
// each member, which another node delivers as a join only if it had
// delivered that member's leave.
//
// # History
//
// [Broker.Append] stores a message of a room with history and publishes
// it in one round trip: a Lua script increments the room's offset, adds
// the message to the room's stream under the ID "<offset>-0" with an
// exact MAXLEN of History.Size, sets the TTL of the stream, epoch and
// offset keys to History.TTL, and publishes the message with its
// position to every node subscribed to the room, the appending one
// included. When the epoch or offset key is missing (the history
// expired, or Redis lost it) the script starts a new epoch: Redis'
// clock in microseconds and random bytes, so epochs never repeat and a
// later one sorts after an earlier one. [Broker.History] reads the
// stream with XRANGE, and gives an empty room an epoch at offset 0, so
// that a member that joined it has a position to resume from.
//
// Each node delivers a room's messages in position order, each once:
// a copy is dropped ([Stats].Duplicates); when the offsets jump (pub/sub
// lost messages while this node's subscription reconnected) the node
// reads the missing ones from the stream and delivers them first
// ([Stats].Filled); when its subscription comes back it compares every
// room with its stream at once, so the last messages published while it
// could not hear are delivered without waiting for a later one. What the
// stream no longer has (trimmed, expired) is counted in [Stats].Missed
// and logged, never skipped silently. A message of a new epoch (Redis
// lost the room's history) is delivered from the epoch's first kept
// message: the Hub sees the epoch change and knows what came before is
// lost, and JoinFrom from the old epoch answers Recovered false.
//
// What Redis persistence buys. With an append-only file and
// appendfsync always, a Redis restart keeps every history and epoch: no
// message acknowledged by Append is lost, every node delivers every
// message exactly once, in order (Missed stays 0, as the tests check),
// and members recover across the restart. With appendfsync everysec (the
// Redis default) a crash of the Redis host can lose the last second of
// appends while keeping the epoch; a node that had delivered those
// messages notices when it compares with Redis after reconnecting (the
// offset went back), logs a warning and starts a new epoch, so that new
// messages do not reuse the offsets of lost ones (an append in the
// moment before that may still be taken for a copy on that node).
// Without persistence a restart loses every
// history: rooms start new epochs and members get Recovered false.
// Redis Cluster and Sentinel work as for messages; a failover to a
// replica that had not received the last writes is like everysec.
//
// Append fails like Publish (below): within Options.Timeout, at once
// while Redis is known to be down; ErrUnavailable means the message was
// neither stored nor delivered anywhere, ErrTimeout that it may have
// been. Append's Lua script runs per message; on a loaded 2-core test
// machine one room took 9,000 to 19,000 appends per second against
// 43,000 to 149,000 plain broadcasts (BenchmarkHistoryBroadcast).
//
// # When Redis is down
//
// Local delivery is the Hub's and goes on. The Broker logs one warning
// when Redis stops answering (commands or the subscription, whichever
// notices first) and one line when both work again, never one per
// message; [Stats] counts the failures, the outages and the
// reconnections.
//
// [Broker.Publish], hence Broadcast and SendTo of a remote connection,
// returns within [Options.Timeout] (1s by default) whatever Redis does,
// with an error wrapping [ErrUnavailable] (or [ErrTimeout] when Redis did
// not answer in time), which the Hub wraps in [hub.ErrPublish]. It fails
// at once, without trying Redis, while either path is down: a command
// failed, or this node's subscription connection broke, which it notices
// at once when Redis goes away (a restart, a failover) since the
// connection is always open (a connection that merely goes silent,
// within two Heartbeats). A broken subscription counts as much as a
// failed command: the other nodes' subscriptions broke too, and a
// PUBLISH that go-redis manages to send meanwhile (it waits out a short
// outage in its own dial retries) would reach Redis but not them. A
// background probe notices when commands work again, the subscription
// notices by itself; Publish keeps failing for 500ms after the later of
// the two is back, the time every node needs to resubscribe. The calls
// already on their way when Redis went down may wait for go-redis'
// retries, within Options.Timeout (see Delivery guarantees). How soon
// a command fails is go-redis' business: it dials DialerRetries times (5
// by default, 100ms apart) before giving up on a refused connection; a
// client with DialerRetries: 1 fails over in one round trip.
//
// The subscription connection is go-redis' [redis.PubSub]: when it breaks,
// it dials again and resubscribes to every room the node still has
// members in, by itself, retrying every 25ms to 250ms. A connection that
// stays silent is checked with PING each Heartbeat and replaced if PING
// goes unanswered. After a reconnection the presence heartbeat runs at
// once, since Redis may have restarted empty.
//
// # Delivery guarantees
//
// Redis pub/sub delivers at most once, and so does the Broker. What is
// guaranteed:
//
//   - Each message reaches another node's Hub at most once, in the order
//     its node published it, even when go-redis sends a PUBLISH again
//     (its reply was lost with the connection, and Redis ran it twice):
//     the copy is dropped and counted in [Stats].Duplicates. (Messages
//     of version-1 nodes are not numbered, hence not checked.)
//   - A nil error from Publish means Redis accepted the message for
//     every node subscribed at that moment. An error, counted in
//     [Stats].PublishErrors, means the other nodes did not get the
//     message, unless its PUBLISH failed after it was sent: Redis may
//     have run it (ErrTimeout always leaves that open).
//   - Publish fails while this node's commands or subscription are down,
//     and for 500ms after both are back (above).
//   - A node counts in [Stats].Missed every message it did not receive
//     from another node on a channel it was subscribed to, as soon as a
//     later message of that node on that channel arrives, and logs a
//     warning (at most one a minute). So a loss the publisher was not
//     told of is still counted where it happened, never silent.
//
// For rooms with history, more holds (see History): every node
// delivers each message Append stored exactly once, in order, through
// outages of pub/sub and restarts of a Redis that keeps its data; the
// limits below do not apply to them.
//
// What is not guaranteed, and where each loss shows:
//
//   - A PUBLISH on its way when Redis dies: Redis answers PUBLISH before
//     it writes the message to the subscribers, so a message it
//     acknowledged in that instant may not have left it; and go-redis
//     may send one again once Redis is back (within Options.Timeout),
//     before the other nodes have resubscribed. Publish returned nil;
//     the receiving nodes count the message in Missed.
//   - A node whose own subscription connection breaks while Redis stays
//     up (a network blip on that node alone), or that takes longer than
//     500ms after Redis is back to resubscribe, misses what is published
//     until it has resubscribed (within the retry delay above). The
//     publishers are not told; that node counts the messages in Missed.
//   - In a cluster, while the application's slot moves to another shard
//     (below), messages published before the nodes resubscribe are lost;
//     the nodes count them in Missed.
//   - The first member's join on a node subscribes asynchronously; a
//     message published by another node in the following round trip
//     does not reach it, and is not counted: the node was not yet
//     subscribed.
//   - Missed counts a loss only once a later message of the same node on
//     the same channel arrives: the last messages before a node stops
//     publishing there are not counted, nor are losses across a
//     publisher's restart or a pause of ten minutes, which start a new
//     stream, nor losses of version-1 publishers. It also counts the
//     messages whose PUBLISH failed after being sent (Redis may or may
//     not have run it), which the publisher counted in PublishErrors
//     too: Missed counts what did not arrive, not what went unreported.
//
// Applications that need more use rooms with history
// (hub.Options.History), or keep a log of their own and use broadcasts
// as notifications.
//
// # Redis Cluster
//
// With a [redis.ClusterClient], [AutoPubSub] uses sharded pub/sub
// (SPUBLISH, SSUBSCRIBE) when the servers support it (Redis 7.0+, asked
// with COMMAND INFO) and classic pub/sub otherwise; [Options.PubSub]
// forces either. Classic PUBLISH in a cluster is forwarded to every
// node of the cluster; a sharded message stays on one shard. Because of
// the hash tag, all of an application's channels and keys share one
// slot, hence one shard: one subscription connection suffices, and
// presence uses multi-key commands; the price is that one application
// does not spread its pub/sub load over several shards (several
// applications, with their own prefixes, do). When the slot moves
// (resharding, failover), Redis drops the sharded subscriptions; the
// Broker notices, reloads the cluster layout and resubscribes on the
// slot's new owner.
//
// The tests start a three-master cluster of private redis-server
// processes (--cluster-enabled) on free ports, run two Hubs on it through
// redis.NewClusterClient in sharded and in classic mode (broadcast,
// SendTo, presence), then migrate the application's slot to another
// master mid-test and check that delivery resumes. They ran against
// Redis 7.0; the fallback to classic pub/sub on servers without SPUBLISH
// was not run against an older server.
//
// # Goroutines
//
// [Broker.Open] (called by hub.New) starts four goroutines, all owned by
// the Broker and ended by [Broker.Close], which waits for them: the
// subscriber (owns the PubSub, applies subscription changes), the
// receiver (reads messages, fills gaps from the streams, hands messages
// and presence events to the Hub, detects and paces reconnections), the
// publisher (sends what Publish and Append queue, batching whatever
// accumulated into one pipeline) and the presence writer (joins, leaves
// and their events, heartbeats, expiry leaves, the outage probe). The
// receiver and the presence writer hand envelopes to the Hub one at a
// time, under one lock. Publish and Append wait on a queue of 1024
// requests, bounded in time by Options.Timeout. [Broker.Members] and
// [Broker.History] read Redis on a goroutine of their own so that the
// caller's wait is bounded even where go-redis does not watch contexts
// (its socket timeouts apply only with ContextTimeoutEnabled); Close
// waits for those too.
//
// # Testing
//
// The package's tests use a real Redis at NEXIO_REDIS_URL (default
// redis://127.0.0.1:6379/0) and skip, saying how to start one, when it
// does not answer, unless NEXIO_REQUIRE_REDIS=1, which makes them fail.
// The restart and cluster tests start private redis-server processes
// (NEXIO_REDIS_SERVER, /usr/bin/redis-server or $PATH).
package redisbroker
