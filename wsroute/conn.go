package wsroute

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// HandlerFunc handles one WebSocket connection. It runs before the
// handshake, so it (and the middleware around it) can inspect the request
// and refuse it; it calls Accept to open the WebSocket. ctx ends when the
// connection ends. What it returns decides how the connection closes: see
// the package documentation.
type HandlerFunc func(ctx context.Context, c *Conn) error

// MessageType is the type of a WebSocket message.
type MessageType int

// Message types, with the values of github.com/coder/websocket.
const (
	// MessageText is a UTF-8 text message.
	MessageText MessageType = MessageType(websocket.MessageText)
	// MessageBinary is a binary message.
	MessageBinary MessageType = MessageType(websocket.MessageBinary)
)

// String returns "text" or "binary".
func (t MessageType) String() string {
	switch t {
	case MessageText:
		return "text"
	case MessageBinary:
		return "binary"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// Message is one WebSocket message.
type Message struct {
	Type MessageType
	Data []byte
}

// Text returns the message's data as a string.
func (m Message) Text() string { return string(m.Data) }

// ConnStats counts a connection's traffic: data messages and their
// payload bytes, as the application sent and received them.
type ConnStats struct {
	MessagesIn, MessagesOut int64
	BytesIn, BytesOut       int64
}

// handshake states of a Conn.
const (
	hsPending  = iota
	hsAccepted // the WebSocket is open (or was)
	hsRefused  // an HTTP response was written (Reject, or a failed Accept)
)

// Conn is one WebSocket connection, from the handshake request to the
// end. Its methods are safe for concurrent use; Receive-style methods
// should be called from one goroutine at a time, since each takes the
// next message.
type Conn struct {
	route  *route
	r      *http.Request
	w      http.ResponseWriter
	ctx    context.Context
	cancel context.CancelFunc
	id     atomic.Pointer[string]

	stateMu sync.Mutex
	state   map[string]any

	hsMu           sync.Mutex // guards the hs fields and openedToRefuse; held during the handshake
	hsState        int
	hsTimedOut     bool
	hsStatus       int  // the handshake response's HTTP status, for ConnEnd
	openedToRefuse bool // accepted only to carry a close code (Close before Accept)
	hsTimer        *time.Timer

	endMu  sync.Mutex // guards ended and endFns
	ended  bool
	endFns []func()

	accepted atomic.Bool
	ws       *websocket.Conn // set once accepted
	nc       *netConn        // set once accepted

	closing    atomic.Bool  // Close has begun
	sentCode   atomic.Int32 // the code this side closed with
	peerCode   atomic.Int32 // the code the peer closed with
	firstClose atomic.Int32 // who closed first: closerServer or closerPeer, 0 if neither yet
	sentReason atomic.Pointer[string]
	peerReason atomic.Pointer[string]
	readFailed atomic.Pointer[error]
	reading    atomic.Int32 // readers in progress, for the keepalive
	closeRead  atomic.Bool
	pingTimer  *time.Timer

	msgsIn, msgsOut   atomic.Int64
	bytesIn, bytesOut atomic.Int64

	// Hooks registered by middleware (hooks.go). recvHooks is read on
	// every message, so it is swapped whole rather than locked.
	hookMu      sync.Mutex
	acceptHooks []func()
	endHooks    []func(ConnEnd)
	recvHooks   atomic.Pointer[[]func(MessageType, int) error]
}

func newConn(rt *route, w http.ResponseWriter, r *http.Request) *Conn {
	ctx, cancel := context.WithCancel(r.Context())
	return &Conn{route: rt, r: r, w: w, ctx: ctx, cancel: cancel}
}

// Request returns the handshake request.
func (c *Conn) Request() *http.Request { return c.r }

// Header returns the handshake request's headers.
func (c *Conn) Header() http.Header { return c.r.Header }

// ResponseHeader returns the headers of the handshake response, to add to
// before Accept or Reject (for example Retry-After before a 429).
func (c *Conn) ResponseHeader() http.Header { return c.w.Header() }

// URL returns the handshake request's URL.
func (c *Conn) URL() *url.URL { return c.r.URL }

// ClientIP returns the client's IP address: Options.ClientIP's answer
// when set, else the host part of the request's RemoteAddr. Behind a
// proxy, either set Options.ClientIP or compose a middleware that
// rewrites RemoteAddr from a header only the proxy sets.
func (c *Conn) ClientIP() string {
	if f := c.route.opts.ClientIP; f != nil {
		if ip := f(c.r); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(c.r.RemoteAddr)
	if err != nil {
		return c.r.RemoteAddr
	}
	return host
}

// Param returns the route parameter name, as filled by http.ServeMux
// patterns ("/ws/user/{user_id}") and by chi (r.PathValue).
func (c *Conn) Param(name string) string { return c.r.PathValue(name) }

// Query returns the first value of the URL query parameter name.
func (c *Conn) Query(name string) string { return c.r.URL.Query().Get(name) }

// ID returns an identifier unique to this connection, across processes
// too: 128 random bits, URL-safe.
func (c *Conn) ID() string {
	if p := c.id.Load(); p != nil {
		return *p
	}
	var b [16]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if c.id.CompareAndSwap(nil, &id) {
		return id
	}
	return *c.id.Load()
}

// Set stores v under key in the connection's state.
func (c *Conn) Set(key string, v any) {
	c.stateMu.Lock()
	if c.state == nil {
		c.state = make(map[string]any)
	}
	c.state[key] = v
	c.stateMu.Unlock()
}

// Get returns the value stored under key by Set.
func (c *Conn) Get(key string) (any, bool) {
	c.stateMu.Lock()
	v, ok := c.state[key]
	c.stateMu.Unlock()
	return v, ok
}

// OnClose registers f to run, in its own goroutine, once the connection
// has ended: it was closed by either side, or its handler returned. If
// it has already ended, f runs at once. It is what context.AfterFunc on
// Context does, for a fraction of the memory, which counts for a hub
// holding every connection of a server.
func (c *Conn) OnClose(f func()) {
	c.endMu.Lock()
	if c.ended {
		c.endMu.Unlock()
		go f()
		return
	}
	c.endFns = append(c.endFns, f)
	c.endMu.Unlock()
}

// end marks the connection over: its context is cancelled and the
// OnClose functions start.
func (c *Conn) end() {
	c.cancel()
	c.endMu.Lock()
	if c.ended {
		c.endMu.Unlock()
		return
	}
	c.ended = true
	fns := c.endFns
	c.endFns = nil
	c.endMu.Unlock()
	for _, f := range fns {
		go f()
	}
}

// Context returns the connection's context, the one given to the
// HandlerFunc: it ends when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Done returns a channel that is closed when the connection ends: the peer
// closed or vanished, Close was called, or the handler returned. A handler
// that only sends must keep the connection read (see CloseRead) for the
// peer's departure to be noticed.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Accepted reports whether the handshake was accepted.
func (c *Conn) Accepted() bool { return c.accepted.Load() }

// Subprotocol returns the negotiated subprotocol, "" if none.
func (c *Conn) Subprotocol() string {
	if !c.accepted.Load() {
		return ""
	}
	return c.ws.Subprotocol()
}

// Stats returns the connection's traffic counts so far.
func (c *Conn) Stats() ConnStats {
	return ConnStats{
		MessagesIn:  c.msgsIn.Load(),
		MessagesOut: c.msgsOut.Load(),
		BytesIn:     c.bytesIn.Load(),
		BytesOut:    c.bytesOut.Load(),
	}
}

// ownDone reports whether ctx ends exactly when the connection ends (the
// handler's context or a value context derived from it). Calls with such
// a context need not arm a per-call timer: the connection's end already
// unblocks them.
func (c *Conn) ownDone(ctx context.Context) bool {
	d := ctx.Done()
	return d == nil || d == c.ctx.Done()
}
