// Package brokertest checks that a hub.Broker keeps the contract the Hub
// relies on, against a real backend, as net/http/httptest and
// testing/fstest do for their interfaces. A broker package runs it in its
// own tests:
//
//	func TestBrokerContract(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) hub.Broker {
//			return mybroker.New(client, &mybroker.Options{Prefix: prefixFor(t)})
//		})
//	}
//
// newBroker returns a new broker that is not opened yet. Every call with
// the same t must return a broker of the same application (they must hear
// one another); calls with different t must not hear one another (derive
// the broker's namespace from t.Name()). Run opens each broker itself,
// as a Hub does, and closes it when the subtest ends.
//
// # What is checked
//
// With newBroker alone, Run checks, each in a subtest that runs in
// parallel with the others: a broadcast reaches every other node
// subscribed to the room, byte for byte, and never comes back to its
// publisher nor reaches a node that is not subscribed; Except travels to
// the other nodes; a message to a connection (hub.SendTo) reaches the
// node that holds it, and one to a connection no node holds fails with
// hub.ErrNoSuchConn; presence lists every node's members and presence
// events reach the other nodes; each publisher's messages arrive in the
// order it published them; and the same across processes through
// hub.Hub, over real WebSocket connections.
//
// A broker that implements hub.HistoryBroker is also checked for
// history: positions that every node agrees on when several nodes append
// to one room at once, deliveries in Position order with no gap and no
// duplicate (the appending node included), History's ranges, limits,
// trimming to Size and current position.
//
// Options add what needs control over the backend:
//
//   - [WithIsolate] cuts one node off the backend: its members must
//     expire on the other nodes within 10 seconds (a node that stopped
//     without saying so), and, for a HistoryBroker, a node that missed
//     appended messages must fill the gap from the store once it is back.
//     [Proxy] is a TCP proxy that makes isolating a node easy.
//   - [WithBackend] stops and starts the backend: Publish must fail within
//     a bounded time while it is down, and the brokers must reconnect and
//     resubscribe by themselves; with Backend.Wipe, a HistoryBroker must
//     start a new epoch after its store lost its data.
//
// Subtests that need an option not given are skipped, saying which.
package brokertest
