package wsroute

import (
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"time"
)

// CompressionMode selects permessage-deflate (RFC 7692) negotiation. An
// offer the RFC says a server must decline (a parameter given twice, a
// window size outside 8-15) is declined; the client's other offers are
// still considered.
type CompressionMode int

const (
	// CompressionDisabled never negotiates compression.
	CompressionDisabled CompressionMode = iota
	// CompressionNoContextTakeover compresses each message on its own:
	// little memory per connection, a lower ratio.
	CompressionNoContextTakeover
	// CompressionContextTakeover keeps a sliding window per connection:
	// a better ratio for about 32 KiB to 1 MiB more memory per connection.
	CompressionContextTakeover
)

// Options configures the routes made by [Options.Handle]. One value is
// typically shared by every route of a server. The zero value and a nil
// *Options mean the documented defaults. Options must not be modified
// after Handle has been called with it.
type Options struct {
	// OriginPatterns lists the extra origins allowed to open a connection,
	// as path.Match patterns matched against the Origin's host (or against
	// "scheme://host" when a pattern contains "://"). The request's own
	// host is always allowed; requests without an Origin header (non-browser
	// clients) are allowed. A handshake from any other origin is refused
	// with 403 and the handler is not called: this is what stops cross-site
	// WebSocket hijacking of cookie-authenticated endpoints.
	// Defaults to none: same origin only.
	OriginPatterns []string

	// InsecureSkipVerify turns the origin check off entirely.
	// Defaults to false.
	InsecureSkipVerify bool

	// Subprotocols lists the subprotocols Accept may negotiate, in order
	// of preference. A client that offers none of them is accepted without
	// a subprotocol (RFC 6455), unless RequireSubprotocol is set.
	// Defaults to none.
	Subprotocols []string

	// RequireSubprotocol refuses with 400, before the handler runs, a
	// handshake that offers none of Subprotocols. Defaults to false.
	RequireSubprotocol bool

	// Compression selects permessage-deflate negotiation.
	// Defaults to CompressionDisabled.
	Compression CompressionMode

	// CompressionThreshold is the smallest message that is compressed.
	// Defaults to 512 bytes (128 with context takeover).
	CompressionThreshold int

	// ReadLimit is the largest message, in bytes, a Receive accepts; a
	// larger one closes the connection with 1009. Negative means no limit.
	// Defaults to 64 KiB.
	ReadLimit int64

	// PingInterval is how often an idle connection is pinged to detect
	// dead peers and keep proxies from timing it out. Negative disables
	// pings. Defaults to 30 seconds.
	PingInterval time.Duration

	// PongTimeout is how long a ping may wait for its pong while the
	// connection is being read (by Receive, Messages or CloseRead); a peer
	// that misses it is dead and the connection is closed. A pong can only
	// be seen while someone reads, so a connection nobody reads is never
	// judged. A ping that goes out behind data still in the socket waits
	// longer: PongTimeout then counts time in which the peer neither
	// answered nor consumed any of that data, so a slow peer that keeps
	// reading a large send is not cut (on Linux the kernel's count of
	// unacknowledged bytes shows it; elsewhere, writes completing).
	// Defaults to 20 seconds.
	PongTimeout time.Duration

	// WriteTimeout bounds how long a write may go without progress, so a
	// client that stops reading cannot block a sender forever; when it
	// passes, the connection is closed. A write that keeps progressing is
	// never cut, by this or by the keepalive, however long it takes.
	// The deadline is moved at most every WriteTimeout/64 (moving it for
	// every message costs CPU), so a stalled write is cut after between
	// 63/64 of WriteTimeout and WriteTimeout. Defaults to 10 seconds.
	WriteTimeout time.Duration

	// HandshakeTimeout is how long the handler (and its middleware) may
	// take to Accept, Reject or Close before the attempt is abandoned and
	// the handler's context is cancelled. It does not cover reading the
	// request: set http.Server.ReadHeaderTimeout for that (slow clients
	// that never finish their headers). Defaults to 10 seconds.
	HandshakeTimeout time.Duration

	// CloseTimeout bounds Conn.Close, whatever the peer does: after it the
	// TCP connection is dropped. Defaults to 2 seconds.
	CloseTimeout time.Duration

	// ClientIP, when set, tells Conn.ClientIP (and so the rate limits and
	// logs built on it) the client's address, for servers behind a proxy
	// that record it elsewhere than in RemoteAddr: for example chi's
	// middleware.ClientIPFromHeader, read with middleware.GetClientIP. An
	// empty result falls back to RemoteAddr. Defaults to nil: the host
	// part of the request's RemoteAddr.
	ClientIP func(r *http.Request) string

	// Logger receives the connection logs. Defaults to slog.Default().
	Logger *slog.Logger

	// Tracker, when set, records every connection so that
	// Tracker.Shutdown can close them for a graceful stop.
	// Defaults to nil: connections are not tracked.
	Tracker *Tracker
}

const (
	defaultReadLimit        = 64 << 10
	defaultPingInterval     = 30 * time.Second
	defaultPongTimeout      = 20 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultCloseTimeout     = 2 * time.Second

	// refuseCloseTimeout bounds the close handshake of a connection that
	// was accepted only to be refused with a code (Close before Accept),
	// so refused clients cannot pin goroutines.
	refuseCloseTimeout = time.Second
)

// withDefaults returns a copy of o with the zero fields filled in. It
// panics on a configuration that can never work, naming the field.
func (o *Options) withDefaults() *Options {
	var c Options
	if o != nil {
		c = *o
	}
	for _, p := range c.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			panic(fmt.Sprintf("wsroute: Options.OriginPatterns: bad pattern %q: %v", p, err))
		}
	}
	if c.RequireSubprotocol && len(c.Subprotocols) == 0 {
		panic("wsroute: Options.RequireSubprotocol is set but Options.Subprotocols is empty")
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = defaultReadLimit
	}
	if c.PingInterval == 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = defaultPongTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = defaultCloseTimeout
	}
	return &c
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// Handle returns an http.Handler that runs fn for each WebSocket handshake
// on the route, with these options. See the package documentation for the
// lifecycle and for how fn's result becomes a close code.
func (o *Options) Handle(fn HandlerFunc) http.Handler {
	if fn == nil {
		panic("wsroute: Handle called with a nil HandlerFunc")
	}
	return &route{opts: o.withDefaults(), fn: fn}
}

// Handle returns an http.Handler that runs fn for each WebSocket handshake
// on the route, with the default Options.
func Handle(fn HandlerFunc) http.Handler {
	return (*Options)(nil).Handle(fn)
}
