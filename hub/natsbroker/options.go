package natsbroker

import (
	"fmt"
	"log/slog"
	"time"
)

// Options configures a Broker. The zero value and nil mean the defaults.
// Every node of one application must use the same Prefix and the same
// PresenceTTL: the TTL is a property of a JetStream bucket that the first
// node creates.
type Options struct {
	// Prefix starts every subject, stream and bucket name the broker
	// uses, so that several applications can share one NATS. It may hold
	// only ASCII letters, digits, '-' and '_'. Defaults to "nexio".
	Prefix string

	// Timeout bounds every call a handler makes into the broker: Publish
	// (Hub.Broadcast, Hub.SendTo), Append and History (Hub.Publish,
	// Hub.JoinFrom) and Members (Hub.Presence). A call that cannot
	// complete in time returns an error rather than waiting for NATS.
	// Defaults to 1s.
	Timeout time.Duration

	// PresenceTTL is how long a node's heartbeat lives in JetStream.
	// Members of a node that stopped without cleaning up (killed, frozen,
	// cut off) disappear from Members at most PresenceTTL plus one
	// Heartbeat after its last heartbeat: with the defaults (6s, and a
	// Heartbeat of 2s), within 8s of a crash. Defaults to 6s.
	PresenceTTL time.Duration

	// Heartbeat is how often the node refreshes its heartbeat and sweeps
	// the members of nodes whose heartbeat expired. It must be shorter
	// than PresenceTTL. Defaults to PresenceTTL / 3.
	Heartbeat time.Duration

	// Replicas is the number of copies JetStream keeps of the history
	// stream and the presence buckets, when the broker creates them (1
	// for a single server, 3 for a three-node cluster that must survive
	// losing a node). Defaults to 1.
	Replicas int

	// Logger receives the broker's logs: one warning when NATS becomes
	// unreachable and one notice when it is back, per outage. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultPrefix      = "nexio"
	defaultTimeout     = time.Second
	defaultPresenceTTL = 6 * time.Second
)

// withDefaults returns a copy of o with the defaults filled in; invalid
// options panic with a "natsbroker: " message, as hub.New does.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	for _, r := range c.Prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			panic(fmt.Sprintf("natsbroker: Options.Prefix %q may hold only ASCII letters, digits, '-' and '_'", c.Prefix))
		}
	}
	if c.Timeout < 0 || c.PresenceTTL < 0 || c.Heartbeat < 0 || c.Replicas < 0 {
		panic("natsbroker: Options durations and Replicas must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = defaultPresenceTTL
	}
	if c.PresenceTTL < 100*time.Millisecond {
		panic("natsbroker: Options.PresenceTTL must be at least 100ms")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.PresenceTTL / 3
	}
	if c.Heartbeat >= c.PresenceTTL {
		panic("natsbroker: Options.Heartbeat must be shorter than Options.PresenceTTL")
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
