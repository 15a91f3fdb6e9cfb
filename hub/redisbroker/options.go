package redisbroker

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Options configures a Broker. The zero value and nil mean the defaults.
// Every node of one application must use the same Prefix and PubSub mode,
// or they will not hear one another, and the same PresenceTTL, or a
// room's presence set may expire between two heartbeats of a node with a
// longer one.
type Options struct {
	// Prefix starts every Redis key and channel the broker uses, so that
	// several applications can share one Redis. It must not contain '{'
	// or '}': the broker wraps it in braces, a Redis Cluster hash tag, so
	// that all of an application's keys and channels live in one slot.
	// Defaults to "nexio".
	Prefix string

	// Timeout bounds every call a handler makes into the broker: Publish
	// (Hub.Broadcast and Hub.SendTo) and Members (Hub.Presence). A call
	// that cannot complete in time returns an error rather than waiting
	// for Redis. History (Hub.JoinFrom and Hub.History with Options.History
	// set) may take ten times as long: it can read thousands of messages,
	// while a reconnect storm competes for Redis. Defaults to 1s.
	Timeout time.Duration

	// PresenceTTL is how long this node's presence entries live in Redis
	// without a heartbeat. Members of a node that stopped without
	// cleaning up (killed, frozen, cut off) disappear from Members at
	// most PresenceTTL after its last heartbeat, and the other nodes
	// deliver their leaves within a Heartbeat after that. Defaults to 6s
	// (leaves within 8s of a crash).
	PresenceTTL time.Duration

	// Heartbeat is how often the node refreshes its presence entries (and
	// rewrites any that Redis lost, for example in a restart). It must be
	// shorter than PresenceTTL. Defaults to PresenceTTL / 3.
	Heartbeat time.Duration

	// PubSub chooses between Redis' classic and sharded pub/sub.
	// Defaults to AutoPubSub.
	PubSub PubSubMode

	// Logger receives the broker's logs: one warning when Redis becomes
	// unreachable and one notice when it is back, per outage. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// PubSubMode chooses how messages travel between nodes.
type PubSubMode int

const (
	// AutoPubSub uses sharded pub/sub with a *redis.ClusterClient whose
	// servers support it (Redis 7.0 or later), classic pub/sub otherwise.
	AutoPubSub PubSubMode = iota
	// ClassicPubSub uses PUBLISH and SUBSCRIBE. In a Redis Cluster every
	// message is then forwarded to every node of the cluster.
	ClassicPubSub
	// ShardedPubSub uses SPUBLISH and SSUBSCRIBE (Redis 7.0 or later):
	// in a Redis Cluster, messages stay on the shard that owns the
	// application's slot.
	ShardedPubSub
)

// String returns the mode's name.
func (m PubSubMode) String() string {
	switch m {
	case AutoPubSub:
		return "auto"
	case ClassicPubSub:
		return "classic"
	case ShardedPubSub:
		return "sharded"
	}
	return fmt.Sprintf("PubSubMode(%d)", int(m))
}

const (
	defaultPrefix      = "nexio"
	defaultTimeout     = time.Second
	defaultPresenceTTL = 6 * time.Second
)

// withDefaults returns a copy of o with the defaults filled in; invalid
// options panic with a "redisbroker: " message, as hub.New does.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		panic("redisbroker: Options.Prefix must not contain '{' or '}'")
	}
	if c.Timeout < 0 || c.PresenceTTL < 0 || c.Heartbeat < 0 {
		panic("redisbroker: Options durations must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = defaultPresenceTTL
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.PresenceTTL / 3
	}
	if c.Heartbeat >= c.PresenceTTL {
		panic("redisbroker: Options.Heartbeat must be shorter than Options.PresenceTTL")
	}
	if c.PresenceTTL < time.Millisecond {
		panic("redisbroker: Options.PresenceTTL must be at least 1ms")
	}
	if c.PubSub < AutoPubSub || c.PubSub > ShardedPubSub {
		panic(fmt.Sprintf("redisbroker: Options.PubSub: unknown mode %d", int(c.PubSub)))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
