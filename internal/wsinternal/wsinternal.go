// Package wsinternal carries what package hub needs from package wsroute
// beyond wsroute's public API, without making it public: wsroute fills
// these variables when it is initialised, and hub (which imports wsroute,
// so wsroute is always initialised first) calls them.
package wsinternal

// TrySendBatch, with c a *wsroute.Conn and msgs a *[]wsroute.Message,
// hands the messages to the socket if it can do so without waiting, as
// one write, and reports whether it did. False means nothing of them was
// sent: the connection was busy, its socket buffer full, a control frame
// waiting, or the connection is one where it never tries (compression,
// a socket that is not a file descriptor); the caller sends them with
// SendBatch instead, which waits. See wsroute's (*Conn).trySendBatch.
var TrySendBatch func(c, msgs any) bool
