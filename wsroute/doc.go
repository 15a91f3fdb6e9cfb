// Package wsroute makes WebSocket endpoints plain net/http handlers.
//
// [Handle] turns a [HandlerFunc] into an http.Handler that mounts on
// http.ServeMux, chi or anything else. The handler runs before the
// handshake, so it and its middleware can inspect the request
// ([Conn.Header], [Conn.Param], [Conn.Query], [Conn.ClientIP]) and refuse it;
// [Conn.Accept] opens the WebSocket:
//
//	mux.Handle("/ws/echo", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
//		if err := c.Accept(ctx); err != nil {
//			return err
//		}
//		for {
//			msg, err := c.ReceiveText(ctx)
//			if err != nil {
//				return err
//			}
//			if err := c.SendText(ctx, "Echo: "+msg); err != nil {
//				return err
//			}
//		}
//	}))
//
// A request that is not a WebSocket upgrade gets 426 Upgrade Required, a
// malformed handshake 400, and a browser handshake from a foreign origin
// 403 ([Options.OriginPatterns]); the handler is not called for them.
//
// # Lifecycle
//
// A connection's life is one state machine, [Conn.State]:
//
//	StateHandshake ──Accept──▶ StateOpen ──a side starts closing──▶ StateClosing ──socket closed──▶ StateClosed
//	      │                        └──────────────the socket is lost──────────────────────────────▶ StateClosed
//	      ├──Close before Accept (the code is carried over a WebSocket)──▶ StateClosing ──▶ StateClosed
//	      └──refused, timed out, or the request ended before Accept──────────────────────▶ StateRefused
//
// Before the handshake: [Conn.Accept] or [Conn.AcceptWith] (choosing the
// subprotocol or adding response headers), [Conn.Reject] (a plain HTTP
// refusal), or [Conn.Close] (accept, then close at once with a code:
// browsers cannot read HTTP refusals but do see close codes).
//
// After it: [Conn.ReceiveText], [Conn.ReceiveBytes], [Conn.ReceiveJSON],
// [Conn.Receive] and the [Conn.Messages] iterator; [Conn.SendText],
// [Conn.SendBytes], [Conn.SendJSON] and [Conn.SendBatch], safe from many
// goroutines. A handler that only sends calls [Conn.CloseRead] so that
// pings are answered and [Conn.Done] closes as soon as the client leaves.
//
// A handler may also hand its connection over with [Conn.Detach] and
// return: wsroute then reads the connection and calls a [MessageFunc]
// for each message, and the connection ends, with the same close codes,
// keepalive, [Tracker] and hooks, when that function fails or either
// side closes. An idle detached connection keeps no handler goroutine,
// which is most of what a server holding many idle connections (hub
// members) spends on each: on Linux it has no goroutine at all (its
// socket waits in an epoll set that one goroutine serves), elsewhere it
// waits on a goroutine's smallest stack.
//
// The ctx given to the handler, [Conn.Done] and the [Conn.OnClose]
// functions all follow the state: they end, close and start exactly when
// the connection reaches StateClosed or StateRefused. The request's
// context counts only during the handshake: a deadline on it (chi's
// middleware.Timeout) bounds the handshake, not an open connection.
// [Conn.OnAccept] and [Conn.OnClose] may be called in any state: a
// function registered after its moment has passed runs at once, in its
// own goroutine, or never if that moment can no longer come.
//
// # Errors become close codes
//
// What the handler returns decides how the connection ends:
//
//	nil, connection still open           1000
//	*CloseError (or wraps one)           its Code and Reason
//	an error from Receive: peer left     nothing more is sent (ErrClosed)
//	ErrWrongMessageType                  1003
//	ErrInvalidUTF8, ErrInvalidJSON       1007
//	ErrMessageTooBig                     1009
//	ErrProtocol (malformed frame)        1002 or no code, never 1011
//	any other error                      1011 "internal error", logged
//	a panic                              1011 "internal error", logged with its stack
//
// Internal error text never reaches the client. If the handler returns
// before accepting: nil without refusing answers 403, a *CloseError
// accepts and closes with its code, any other error answers 500.
// Logs go to [Options.Logger] (log/slog).
//
// # Close codes
//
// [StatusCode] and its constants mirror github.com/coder/websocket's, so
// users need not import it. [Conn.Close] is idempotent, cuts long reasons
// at a UTF-8 boundary, refuses codes that may not be sent with
// [ErrInvalidCloseCode], and returns within [Options.CloseTimeout]
// whatever the peer does. [CloseStatus] reads the peer's code from a
// Receive or Send error.
//
// # Timeouts and limits
//
// [Options] is a plain struct whose zero value means the defaults: same
// origin only, 64 KiB read limit, a ping every 30 s (dead peers are
// closed; a peer still reading a large send is not dead), a 10 s write
// timeout (a client that stops reading cannot block a sender; one that
// reads slowly is not cut), a 10 s handshake timeout, a 2 s close
// timeout. Messages over 64 KiB are sent as several frames, so that
// pings and pongs pass between them. The handshake
// request itself is read by net/http: set http.Server.ReadHeaderTimeout
// (for example to 10 s) so half-sent requests cannot pile up.
//
// # Batching
//
// [Conn.SendBatch] hands several messages to the socket in one write,
// each still its own WebSocket message: the hub package drains each
// member's queue this way, which is what makes broadcasts cheap.
//
// # Hooks for middleware
//
// Middleware (package wsmw) run before the handshake and observe the rest
// without wrapping the Conn: [Conn.OnAccept] runs when the handshake
// succeeds, [Conn.OnReceive] for each message received (it may refuse
// one, which closes the connection), and [Conn.OnEnd] once the
// connection is over, with a [ConnEnd] saying how: accepted or refused,
// the HTTP status, the close code and reason, which side closed. [Conn.Stats] counts the
// traffic at no cost per message. [Conn.OnClose] runs a function when
// the connection ends, for less memory than context.AfterFunc: the hub
// removes members with it.
//
// # HTTP middleware in front of a route
//
// Accepting takes the connection over from net/http through the
// http.ResponseWriter the route was given (it hijacks it). HTTP
// middleware that wraps the ResponseWriter must keep that possible: its
// wrapper implements http.Hijacker or, better, Unwrap() http.ResponseWriter
// (as http.ResponseController expects). http.TimeoutHandler cannot wrap a
// WebSocket route. When the chain cannot hijack, the client gets 500 and
// the failure is logged at ERROR with the fix.
//
// # Graceful shutdown
//
// http.Server.Shutdown neither closes nor waits for WebSocket
// connections, which are hijacked. A [Tracker] in [Options.Tracker]
// records them; [Tracker.Shutdown] sends 1001 "going away" to each, waits
// for the handlers (and detached connections), and drops what remains
// when its context ends.
package wsroute
