// Package wsmw provides WebSocket middleware: logic that runs before the
// handshake, in the order it was added, and may refuse a connection
// before the handler runs.
//
// A [Middleware] wraps a wsroute.HandlerFunc, as func(http.Handler)
// http.Handler wraps an http.Handler. [Chain] composes them, the first
// given running first; [Func] writes one with next as a parameter, as
// Python's Nexio writes middleware:
//
//	logMiddleware := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
//		log.Printf("WebSocket request: %s", c.URL())
//		return next(ctx, c)
//	})
//	rateLimitMiddleware := wsmw.Func(func(ctx context.Context, c *wsroute.Conn, next wsroute.HandlerFunc) error {
//		if c.ClientIP() == "192.168.1.1" {
//			return c.Close(4003, "Rate limit exceeded")
//		}
//		return next(ctx, c)
//	})
//	mux.Handle("/ws/echo", wsroute.Handle(wsmw.Chain(logMiddleware, rateLimitMiddleware)(echo)))
//
// On chi, package chiadapter keeps a stack per router (the Nexio
// add_ws_middleware).
//
// # Refusing a connection
//
// A middleware refuses by calling Close on the connection before Accept
// (the WebSocket is opened only to carry the close code, which browsers
// can read) or Reject (a plain HTTP status, which browsers cannot
// show), and not calling next. One that neither calls next nor refuses
// gets the 403 wsroute answers to an unanswered handshake. The built-in
// middleware refuse with close codes by default, and with an HTTP status
// when their options' RejectHTTP is set:
//
//	Auth        4001 "Unauthorized"          or 401 (WWW-Authenticate: Bearer)
//	RateLimit   4003 "Rate limit exceeded"   or 429 with Retry-After
//	MaxConns    1013 "try again later"       or 503
//
// After refusing they return an error ([ErrUnauthorized],
// [ErrRateLimited], [ErrTooManyConns]) so that middleware above them,
// [Logger] first, can tell why; wsroute logs it at debug level only.
//
// # Passing values to the handler
//
// Call next with a derived context: the handler receives it. [Auth] puts
// the identity its Validate function returned there ([Identity],
// [Authenticated]). Conn.Set and Conn.Get hold per-connection state too.
//
// # Observing a connection
//
// A middleware's code runs before the handshake, but it can register
// functions with the Conn that run later: [wsroute.Conn.OnAccept],
// [wsroute.Conn.OnReceive] (which may refuse a message) and
// [wsroute.Conn.OnEnd], which learns the close code. [Logger] and
// [MessageRate] are built that way, so they add nothing to the handler's
// code and, per message, only what they must: Logger reads wsroute's
// counters ([wsroute.Conn.Stats]) once, at the end.
//
// # Built-in middleware
//
//   - [Logger]: one log line when a connection is accepted or refused,
//     one when it ends (code, reason, duration, messages and bytes);
//     secrets are redacted.
//   - [Recover]: turns a panic below it into a returned [PanicError].
//   - [Auth]: a token from the Authorization header, ?token=, a cookie or
//     Sec-WebSocket-Protocol, checked against a static secret in
//     constant time or by a function of yours.
//   - [RateLimit]: connection attempts per client IP (token bucket), with
//     a bounded table of clients.
//   - [MaxConns]: open connections in total and per client IP.
//   - [MessageRate]: messages per second per connection; past it, 1008.
//
// Options are plain structs whose zero fields mean the documented
// defaults; a configuration that cannot work panics when the middleware
// is made, with a message starting "wsmw: ".
//
// The demo server's stack, in order:
//
//	wsmw.Logger(logger)
//	wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40})
//	wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"}) // on /ws/secure/echo
package wsmw
