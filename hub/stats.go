package hub

import "sync/atomic"

// Stats are a hub's counters since New. Reading them is cheap: atomic
// loads, no lock.
type Stats struct {
	Members         int    `json:"members"`          // connections of this node in at least one room
	Rooms           int    `json:"rooms"`            // rooms with members on this node
	Broadcasts      uint64 `json:"broadcasts"`       // Broadcast calls served locally
	MessagesOut     uint64 `json:"messages_out"`     // messages handed to members' sockets
	BytesOut        uint64 `json:"bytes_out"`        // their payload bytes
	Dropped         uint64 `json:"dropped"`          // messages dropped by DropNewest or DropOldest
	SlowDisconnects uint64 `json:"slow_disconnects"` // members closed with 1008 by Disconnect
	WriteErrors     uint64 `json:"write_errors"`     // member writes that failed (the peer left or stalled)
	Received        uint64 `json:"received"`         // messages delivered from other nodes
	BrokerErrors    uint64 `json:"broker_errors"`    // failed publishes and presence updates
}

type counters struct {
	members, rooms  atomic.Int64
	broadcasts      atomic.Uint64
	messagesOut     atomic.Uint64
	bytesOut        atomic.Uint64
	dropped         atomic.Uint64
	slowDisconnects atomic.Uint64
	writeErrors     atomic.Uint64
	received        atomic.Uint64
	brokerErrors    atomic.Uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	s := &h.stats
	return Stats{
		Members:         int(s.members.Load()),
		Rooms:           int(s.rooms.Load()),
		Broadcasts:      s.broadcasts.Load(),
		MessagesOut:     s.messagesOut.Load(),
		BytesOut:        s.bytesOut.Load(),
		Dropped:         s.dropped.Load(),
		SlowDisconnects: s.slowDisconnects.Load(),
		WriteErrors:     s.writeErrors.Load(),
		Received:        s.received.Load(),
		BrokerErrors:    s.brokerErrors.Load(),
	}
}
