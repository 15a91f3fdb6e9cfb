package wsroute

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
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

// checkSendable returns an error for a type that is neither text nor
// binary: any other value would put a continuation or reserved opcode on
// the wire, which the peer must treat as a protocol error.
func checkSendable(op string, t MessageType) error {
	if t == MessageText || t == MessageBinary {
		return nil
	}
	return fmt.Errorf("wsroute: %s: %v is not a message type that can be sent; use MessageText or MessageBinary (nothing was sent)", op, t)
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

// Conn is one WebSocket connection, from the handshake request to the
// end; where it is in between is its [State]. Its methods are safe for concurrent use; Receive-style methods
// should be called from one goroutine at a time, since each takes the
// next message.
type Conn struct {
	route *route
	r     *http.Request
	w     http.ResponseWriter
	id    atomic.Pointer[string]

	valuesMu sync.Mutex
	values   map[string]any

	// The lifecycle (state.go). st holds the State and how it got there;
	// it changes under lc, which also guards the functions waiting for a
	// state, and is read without it. ctx ends when st reaches a final
	// state, and only then.
	lc               sync.Mutex
	st               atomic.Int32
	accepted         atomic.Bool // beside st: no padding (see below)
	acceptHooks      []func()
	closeFns         []func()
	ctx              context.Context
	cancel           context.CancelFunc
	stopRequestWatch func() bool // nil once stopped (unwatchRequest)
	detach           *detached   // set by Detach: the handler hands the connection over
	handlerDone      bool        // the handler has returned: Detach is too late
	// noPoll keeps an idle detached connection's reader on a goroutine
	// of its own, as on systems without the poller (detach.go, rest).
	// Set by the tests (DetachWithoutPoller), to test both ways on
	// Linux, or when the system refuses an epoll set.
	noPoll bool

	hsMu        sync.Mutex // serialises the answers to the handshake; guards the hs fields
	hsTimedOut  bool
	hsWatching  bool // the request's context is watched (watchRequest)
	requestGone bool // the request's context ended before the handshake was answered
	hsStatus    int  // the handshake response's HTTP status, for ConnEnd; 0 until written
	hsTimer     *time.Timer

	// accepted (above) is set once ws, nc and the keepalive timer are
	// stored: a WebSocket was opened (by Accept, or by Close before
	// Accept to carry a close code). It publishes those fields; where the
	// connection is in its life is State's to say.
	ws    *websocket.Conn
	nc    *netConn
	guard *guardedConn // nc as coder/websocket reads it

	sentCode   atomic.Int32 // the code this side closed with
	peerCode   atomic.Int32 // the code the peer closed with
	sentReason atomic.Pointer[string]
	peerReason atomic.Pointer[string]
	readFailed atomic.Pointer[error]
	reading    atomic.Int32 // readers in progress, for the keepalive
	closeRead  atomic.Bool
	pingTimer  *time.Timer
	pingStop   context.CancelFunc // ends the ping in flight; under lc

	msgsIn, msgsOut   atomic.Int64
	bytesIn, bytesOut atomic.Int64

	// Hooks registered by middleware (hooks.go). recvHooks is read on
	// every message, so it is swapped whole rather than locked.
	hookMu    sync.Mutex
	endHooks  []func(ConnEnd)
	endRec    *ConnEnd // how it ended, once the OnEnd functions have run
	recvHooks atomic.Pointer[[]func(MessageType, int) error]
}

func newConn(rt *route, w http.ResponseWriter, r *http.Request) *Conn {
	c := &Conn{route: rt, r: r, w: w}
	c.newLifecycle(r)
	return c
}

// Request returns the handshake request.
func (c *Conn) Request() *http.Request { return c.r }

// Header returns the handshake request's headers.
func (c *Conn) Header() http.Header { return c.r.Header }

// ResponseHeader returns the headers of the handshake response, to add to
// before Accept or Reject (for example Retry-After before a 429). The
// headers Accept adds (its own and AcceptParams.Header) go into the 101
// response without being recorded here.
// After a detached connection's handler returned, it is an empty header
// that goes nowhere.
func (c *Conn) ResponseHeader() http.Header {
	c.hsMu.Lock()
	w := c.w
	c.hsMu.Unlock()
	if w == nil {
		return http.Header{}
	}
	return w.Header()
}

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
	c.valuesMu.Lock()
	if c.values == nil {
		c.values = make(map[string]any)
	}
	c.values[key] = v
	c.valuesMu.Unlock()
}

// Get returns the value stored under key by Set.
func (c *Conn) Get(key string) (any, bool) {
	c.valuesMu.Lock()
	v, ok := c.values[key]
	c.valuesMu.Unlock()
	return v, ok
}

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
