package wstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Server is a WebSocket server on a loopback address for tests.
type Server struct {
	// URL is the server's base WebSocket URL, "ws://127.0.0.1:port",
	// without a trailing slash.
	URL string

	// HTTP is the underlying server: HTTP.URL is the http:// base URL for
	// plain requests, HTTP.Client() a client for it.
	HTTP *httptest.Server

	// handlers counts ServeHTTP calls in progress. A WebSocket handler
	// runs inside ServeHTTP for the whole connection, and httptest does
	// not wait for hijacked connections, so Close waits on this.
	handlers sync.WaitGroup

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	closed bool
}

// CloseWait bounds how long Server.Close waits for handlers to return
// after closing the connections it dialed.
const CloseWait = 10 * time.Second

// NewServer starts h on a loopback address. h is any http.Handler: a
// route made with wsroute.Handle, a mux holding several, a router with
// its middleware. The caller must Close the server.
func NewServer(h http.Handler) *Server {
	s := &Server{conns: make(map[*Conn]struct{})}
	s.HTTP = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		h.ServeHTTP(w, r)
	}))
	s.URL = "ws" + strings.TrimPrefix(s.HTTP.URL, "http")
	return s
}

// DialOptions are the client's side of a handshake.
type DialOptions struct {
	// Header holds extra request headers: Authorization, Cookie, Origin
	// (set it to test the origin check as a browser would trip it).
	// Defaults to none.
	Header http.Header

	// Subprotocols are offered in Sec-WebSocket-Protocol, in order.
	// Defaults to none.
	Subprotocols []string
}

// Dial opens a WebSocket connection to path on the server ("/ws/echo",
// "/ws/user/al%20ice?x=1"). ctx bounds the handshake only. A handshake
// answered with plain HTTP returns a *RefusedError with its status; a
// handshake accepted only to be closed (wsroute.Conn.Close before
// Accept) succeeds, and the Conn then reports the close code.
func (s *Server) Dial(ctx context.Context, path string, opts *DialOptions) (*Conn, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("wstest: Dial on a closed Server")
	}
	var do websocket.DialOptions
	if opts != nil {
		do.HTTPHeader = opts.Header
		do.Subprotocols = opts.Subprotocols
	}
	ws, resp, err := websocket.Dial(ctx, s.URL+path, &do)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(resp.Body)
			}
			return nil, &RefusedError{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(body)}
		}
		return nil, fmt.Errorf("wstest: dial %s: %w", path, err)
	}
	// Reading is the Conn's job; messages of any size are the handler's
	// business, not the test client's.
	ws.SetReadLimit(-1)
	c := newConn(ws, resp, s)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.CloseNow()
		return nil, errors.New("wstest: Dial on a closed Server")
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close shuts the server down: it drops every connection it dialed that
// is still open, closes the listener, and waits up to CloseWait for the
// handlers to return (a handler that ignores its connection's end is
// reported on standard error rather than hanging the test). Close is
// idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
	s.HTTP.Close()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	t := time.NewTimer(CloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		fmt.Fprintf(os.Stderr, "wstest: Server.Close: a handler is still running %v after its connection was dropped\n", CloseWait)
	}
}
