package hub

import (
	"time"

	"github.com/nexio-go/nexio/wsroute"
)

// Position places a message in a room's history.
type Position struct {
	// Epoch names one incarnation of a room's stream: a new one when
	// its history was lost (a new hub without a broker, or a broker's
	// store that lost its data).
	Epoch string
	// Offset is 1 for the first message of an epoch and grows by 1 for
	// each message after it.
	Offset uint64
}

// IsZero reports whether p is the zero Position ("from the start", or
// "live only" for JoinFrom).
func (p Position) IsZero() bool { return p == Position{} }

// History says how much of each room's past a Hub keeps. The zero value
// keeps nothing: history is off and costs nothing.
type History struct {
	Size int           // messages kept per room
	TTL  time.Duration // how long a room's history outlives its last message
}

// Entry is one kept message.
type Entry struct {
	Position Position
	Type     wsroute.MessageType
	Data     []byte
}

// Recovery is what JoinFrom could give a member.
type Recovery struct {
	// Recovered is false when since could not be honoured (another
	// epoch, or older than what is kept): nothing was replayed and the
	// member joined live.
	Recovered bool
	// Missed is the number of messages replayed.
	Missed int
	// Position is where the member now stands: the last message replayed,
	// or the room's newest message when nothing was.
	Position Position
}
