package natsbroker

import "sync/atomic"

// Stats are a Broker's counters since New.
type Stats struct {
	Published      uint64 // messages Publish and Append sent
	PublishErrors  uint64 // Publish and Append calls that failed
	Received       uint64 // messages handed to the Hub from live subjects
	Filled         uint64 // messages of rooms with history read back from JetStream to fill a gap
	Missed         uint64 // messages of rooms with history that a gap lacked and JetStream no longer had (or could not give)
	Duplicates     uint64 // messages of rooms with history dropped because already delivered
	Conflicts      uint64 // appends that lost the race for an offset and were retried
	Dropped        uint64 // messages the NATS client dropped because the receiver fell behind
	Malformed      uint64 // messages on the broker's subjects that did not decode
	Expired        uint64 // members of dead nodes this node swept
	PresenceErrors uint64 // failed presence writes (retried)
	Outages        uint64 // times the connection to NATS was lost
	Reconnects     uint64 // times it came back
	Connected      bool   // the connection to NATS is up now
}

type counters struct {
	published, publishErrors, received, filled, missed, duplicates     atomic.Uint64
	conflicts, malformed, expired, presenceErrors, outages, reconnects atomic.Uint64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	s := Stats{
		Published:      b.stats.published.Load(),
		PublishErrors:  b.stats.publishErrors.Load(),
		Received:       b.stats.received.Load(),
		Filled:         b.stats.filled.Load(),
		Missed:         b.stats.missed.Load(),
		Duplicates:     b.stats.duplicates.Load(),
		Conflicts:      b.stats.conflicts.Load(),
		Malformed:      b.stats.malformed.Load(),
		Expired:        b.stats.expired.Load(),
		PresenceErrors: b.stats.presenceErrors.Load(),
		Outages:        b.stats.outages.Load(),
		Reconnects:     b.stats.reconnects.Load(),
		Connected:      !b.down.Load(),
	}
	b.mu.Lock()
	for _, sub := range b.subs {
		if n, err := sub.Dropped(); err == nil {
			s.Dropped += uint64(n)
		}
	}
	b.mu.Unlock()
	return s
}
