// Package wstest tests WebSocket handlers over real sockets, as
// net/http/httptest does for plain handlers.
//
// [NewServer] starts any http.Handler — a route made with wsroute.Handle,
// an http.ServeMux, a chi router — on a loopback address; [Server.Dial]
// opens a client [Conn] to one of its paths:
//
//	srv := wstest.NewServer(wsroute.Handle(echo))
//	defer srv.Close()
//	c, err := srv.Dial(ctx, "/", nil)
//	if err != nil {
//		t.Fatal(err)
//	}
//	if err := c.SendText("hi"); err != nil {
//		t.Fatal(err)
//	}
//	if err := c.ExpectText("Echo: hi"); err != nil {
//		t.Fatal(err)
//	}
//
// Everything goes through a real TCP connection and a real handshake, so
// a refusal looks exactly as it does in production: [wsroute.Conn.Reject]
// (and 426, 403 for a foreign Origin) makes Dial fail with a
// [*RefusedError] carrying the HTTP status, and a close before Accept
// (wsroute.Conn.Close, the way browsers see a refusal) is a successful
// Dial followed by the close code, which [Conn.ExpectClose] asserts.
//
// # Expectations and timeouts
//
// A Conn reads the connection on its own goroutine into a queue, so pings
// are answered while the test is busy, and an expectation that times out
// ([ErrTimeout]) leaves the connection open: [Conn.ExpectNoMessage] can
// assert that nothing arrives. Each Receive or Expect call waits at most
// [Conn.Timeout] (default [DefaultTimeout]). Mismatches are errors
// wrapping [ErrUnexpected] whose text says what came and what was
// expected; a connection that ended is [ErrClosed], and
// [wsroute.CloseStatus] reads the server's code from it.
//
// # Cleaning up
//
// [Server.Close] closes every Conn the server dialed and waits (boundedly)
// for the handlers to return, so tests that check for leaked goroutines
// (go.uber.org/goleak) pass: net/http/httptest does not wait for
// connections that were hijacked, as WebSocket connections are.
package wstest
