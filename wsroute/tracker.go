package wsroute

import (
	"context"
	"sync"
)

// Tracker records open connections so a server can stop gracefully:
// http.Server.Shutdown neither closes nor waits for hijacked connections.
// Set it in Options.Tracker and call Shutdown when the server stops,
// next to http.Server.Shutdown, and wait for it before the process exits
// (see the example). Starting it from http.Server.RegisterOnShutdown is
// not enough on its own: Shutdown does not wait for those functions. The
// zero value is not usable; use NewTracker.
type Tracker struct {
	mu       sync.Mutex
	conns    map[*Conn]struct{} // accepted, handler still running or detached
	handlers int                // handlers running, accepted or not, and detached connections
	closing  bool
	idle     chan struct{} // closed when closing and handlers reaches 0
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{conns: make(map[*Conn]struct{}), idle: make(chan struct{})}
}

// Len returns the number of accepted connections whose handlers are still
// running, and of detached connections (Conn.Detach) still open.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// begin registers a handler; false once shutting down.
func (t *Tracker) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.handlers++
	return true
}

// add records an accepted connection; false once shutting down.
func (t *Tracker) add(c *Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// end unregisters a handler that has returned, or a detached connection
// that has ended.
func (t *Tracker) end(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	t.handlers--
	if t.closing && t.handlers == 0 {
		close(t.idle)
	}
}

// Shutdown closes every tracked connection with 1001 "going away" and
// refuses new ones the same way, then waits for their handlers to return
// (and detached connections to end) until ctx ends. Connections still
// open then are dropped and ctx's error is returned. Shutdown is meant to
// be called once.
func (t *Tracker) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return nil
	}
	t.closing = true
	if t.handlers == 0 {
		close(t.idle)
	}
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()

	// One goroutine per connection: each close handshake is bounded by
	// Options.CloseTimeout, and they must not wait on one another.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close(StatusGoingAway, "going away")
		}()
	}
	select {
	case <-t.idle:
		wg.Wait()
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for c := range t.conns {
		c.nc.Close()
	}
	t.mu.Unlock()
	wg.Wait()
	return ctx.Err()
}
