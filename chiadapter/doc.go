// Package chiadapter mounts WebSocket routes and WebSocket middleware
// stacks on chi routers.
//
// [New] wraps a chi.Router; [Router.Handle] registers a wsroute
// handler on it (the Nexio @app.ws_route) and [Router.Use] adds
// wsmw middleware that run before the handshake (the Nexio
// add_ws_middleware):
//
//	r := chi.NewRouter()
//	r.Use(middleware.ClientIPFromHeader("X-Real-IP", proxyCIDR), middleware.RequestID)
//	ws := chiadapter.New(r, &wsroute.Options{Tracker: tracker})
//	ws.Use(wsmw.Logger(logger), wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}))
//	ws.Handle("/ws/echo", echo)
//	ws.Handle("/ws/user/{user_id}", func(ctx context.Context, c *wsroute.Conn) error {
//		userID := chiadapter.Param(c, "user_id")
//		...
//	})
//	ws.With(wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})).Handle("/ws/secure/echo", echo)
//
// # Middleware order
//
// The middleware added with Use apply to every route of that Router and
// of its groups, whether Use came before or after Handle, as Nexio's
// app middleware cover all routes. A route runs the stack of the
// outermost Router first, then those of the groups enclosing it
// ([Router.Group], [Router.Route], [Router.With]), each in the order
// added; a group's Use stays inside the group. The chain is built when a
// route first serves and rebuilt after a later Use, never per
// connection.
//
// # Route parameters
//
// [Param] is chi.URLParam, URL-decoded ("/ws/user/al%20ice" gives
// "al ice"); Conn.Param returns the same.
//
// # chi's HTTP middleware
//
// chi's middleware (r.Use) run before the WebSocket stack, on the
// handshake request; those that wrap the ResponseWriter must let it be
// hijacked, which chi's do. How the common ones behave on a WebSocket
// route:
//
//   - ClientIPFromHeader, ClientIPFromXFF and the other
//     ClientIPFrom* middleware decide Conn.ClientIP, and with it the keys
//     of wsmw.RateLimit and wsmw.MaxConns and what wsmw.Logger logs: New
//     reads their result ([ClientIP]) unless Options.ClientIP says
//     otherwise. Give them your proxy's addresses, or clients choose
//     their own IP.
//   - RealIP (deprecated in chi v5.5: it believes headers any client can
//     send) rewrites RemoteAddr, which Conn.ClientIP reports when no
//     ClientIPFrom* middleware ran. It works, with that flaw.
//   - RequestID puts an ID in the request context, which the handler's
//     context carries.
//   - Recoverer is harmless; wsroute recovers handler panics itself.
//   - Logger writes one line per handshake when the handler returns,
//     that is when the connection ends, with status 101. It prints the
//     full request URI, query included: a ?token= appears in clear.
//     wsmw.Logger redacts it.
//   - Throttle counts a WebSocket for its whole life, not for its
//     handshake: with Throttle(n), n open connections make every other
//     request wait or get 429. Prefer wsmw.MaxConns for connections.
//   - Timeout should not wrap WebSocket routes. It puts a deadline on the
//     request context. The deadline bounds the handshake (a handler still
//     deciding when it passes is refused), but an open connection
//     outlives it: its ctx, Conn.Done and OnClose follow the connection,
//     not the request (see wsroute.State). Conn.Request().Context() does
//     end at the deadline, and when the handler returns Timeout tries to
//     write a 504 on the hijacked connection, which net/http logs.
//     Register WebSocket routes outside the group that uses it.
//     chiadapter logs a warning the first time a route sees such a
//     deadline.
package chiadapter
