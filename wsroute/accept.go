package wsroute

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/coder/websocket"
)

// AcceptParams lets a handler choose the subprotocol and add response
// headers when it accepts. See [Conn.AcceptWith].
type AcceptParams struct {
	// Subprotocol is echoed to the client as the negotiated subprotocol.
	// It must be one the client offered in Sec-WebSocket-Protocol. Empty
	// means the route's Options.Subprotocols are negotiated as usual.
	Subprotocol string

	// Header holds extra headers for the 101 response.
	Header http.Header
}

// Accept performs the WebSocket handshake with the route's Options. After
// it, the Receive and Send methods work. If it fails, an HTTP error has
// been written and the handler should return.
func (c *Conn) Accept(ctx context.Context) error {
	return c.AcceptWith(ctx, AcceptParams{})
}

// AcceptWith is Accept with a chosen subprotocol or extra response headers.
func (c *Conn) AcceptWith(ctx context.Context, p AcceptParams) error {
	hooks, err := c.acceptWith(ctx, p)
	if err != nil {
		return err
	}
	for _, fn := range hooks {
		fn()
	}
	return nil
}

// acceptWith performs the handshake and moves the connection to
// StateOpen; it returns the OnAccept functions to run.
func (c *Conn) acceptWith(ctx context.Context, p AcceptParams) ([]func(), error) {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if err := c.acceptLocked(ctx, p); err != nil {
		return nil, err
	}
	if t := c.route.opts.Tracker; t != nil && !t.add(c) {
		// Shutting down: the client still sees why.
		c.closeWith(StatusGoingAway, "going away", refuseCloseTimeout)
		return nil, fmt.Errorf("%w: connection closed with 1001", ErrShuttingDown)
	}
	hooks, ok := c.toOpen()
	if !ok {
		// Close was called, or the socket was lost, while the
		// handshake was finishing.
		c.stopKeepalive()
		return nil, fmt.Errorf("%w: the connection ended before Accept returned", ErrClosed)
	}
	return hooks, nil
}

// acceptLocked writes the 101 response and sets up the WebSocket. The
// connection stays in StateHandshake: the caller moves it on.
func (c *Conn) acceptLocked(ctx context.Context, p AcceptParams) error {
	switch {
	case c.hsTimedOut:
		return ErrHandshakeTimeout
	case c.requestGone || c.r.Context().Err() != nil:
		// The client left (or a middleware's deadline passed) while the
		// handler was deciding: nothing can reach it, and it is not a
		// server error. The context is read here too: requestEnded runs
		// on its own goroutine and may not have run yet, while the
		// handler already saw the context end; this does what it would.
		if !c.requestGone {
			c.requestGone = true
			c.end()
		}
		return fmt.Errorf("%w: the request's context ended before the handshake was accepted (the client left, or a middleware's deadline passed): %w",
			ErrClosed, context.Cause(c.r.Context()))
	case c.State() != StateHandshake || c.accepted.Load():
		return ErrAlreadyAccepted
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wsroute: accept: %w", err)
	}
	o := c.route.opts
	ao := websocket.AcceptOptions{
		// The origin was checked before the handler ran.
		InsecureSkipVerify:   true,
		Subprotocols:         o.Subprotocols,
		CompressionMode:      coderCompression(o.Compression),
		CompressionThreshold: o.CompressionThreshold,
	}
	if p.Subprotocol != "" {
		if !offered(c.r, p.Subprotocol) {
			return fmt.Errorf("wsroute: AcceptParams.Subprotocol %q was not offered by the client (Sec-WebSocket-Protocol: %q)",
				p.Subprotocol, c.r.Header.Values(hdrProtocol))
		}
		ao.Subprotocols = []string{p.Subprotocol}
	}
	hw := &hijackWriter{ResponseWriter: c.w, writeTimeout: o.WriteTimeout, onClose: c.end, conn: c}
	hw.ownHeader()
	defer hw.releaseHeader()
	h := hw.Header()
	for k, vs := range p.Header {
		h[k] = append(h[k], vs...)
	}
	ws, err := websocket.Accept(hw, declineBadDeflateOffers(c.r, o.Compression), &ao)
	if err != nil {
		c.hsStatus = hw.status
		if hw.nc != nil {
			hw.nc.Close()
		}
		c.end()
		if hw.hijackErr != nil {
			// A server error, not the client's: coder/websocket has
			// answered 500.
			err := hijackError(c.w, hw.hijackErr)
			o.logger().Error(err.Error(), c.attrs()...)
			return err
		}
		return fmt.Errorf("wsroute: accept: %w", err)
	}
	if hw.nc == nil {
		// coder/websocket hijacked something other than our wrapper:
		// batching and write deadlines would silently not work.
		ws.CloseNow()
		c.end()
		return errors.New("wsroute: accept: the connection was not hijacked through wsroute's ResponseWriter; report this as a bug")
	}
	ws.SetReadLimit(o.ReadLimit)
	c.ws, c.nc, c.guard = ws, hw.nc, hw.guard
	if g := hw.guard; g.br.Buffered() == 0 {
		// coder/websocket put the reader over an io.MultiReader of what
		// it held (nothing: Hijack moved it into g) and g; reading g
		// directly keeps neither alive (assumption 18 in coder.go).
		g.br.Reset(g)
	}
	c.nc.direct = directMode(hw.Header())
	c.hsStatus = http.StatusSwitchingProtocols
	if c.hsTimer != nil {
		c.hsTimer.Stop()
		c.hsTimer = nil // a connection may live for days: keep nothing it no longer needs
	}
	c.startKeepalive()
	// Published last: whoever sees accepted (Close, from any goroutine)
	// sees ws, nc and the keepalive timer too.
	c.accepted.Store(true)
	return nil
}

// Reject refuses the handshake with a plain HTTP response. Browsers do not
// show the status to scripts; use Close before Accept for a refusal a
// browser client can read.
func (c *Conn) Reject(status int, message string) error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.State() != StateHandshake || c.accepted.Load() {
		return ErrAlreadyAccepted
	}
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	if message == "" {
		message = http.StatusText(status)
	}
	c.refuseLocked(status, message)
	return nil
}

func coderCompression(m CompressionMode) websocket.CompressionMode {
	switch m {
	case CompressionNoContextTakeover:
		return websocket.CompressionNoContextTakeover
	case CompressionContextTakeover:
		return websocket.CompressionContextTakeover
	}
	return websocket.CompressionDisabled
}

// offered reports whether the client offered subprotocol sp.
func offered(r *http.Request, sp string) bool {
	for _, p := range headerTokens(r.Header, hdrProtocol) {
		if strings.EqualFold(p, sp) {
			return true
		}
	}
	return false
}

// Subprotocols returns the subprotocols the client offered, in order.
func (c *Conn) Subprotocols() []string {
	return headerTokens(c.r.Header, hdrProtocol)
}

// headerTokens splits the comma-separated values of header key.
func headerTokens(h http.Header, key string) []string {
	var tokens []string
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tokens = append(tokens, t)
			}
		}
	}
	return tokens
}

// hasToken reports whether header key lists token, without allocating:
// it runs on every request to the route.
func hasToken(h http.Header, key, token string) bool {
	for _, v := range h[key] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// isUpgrade reports whether r asks for a WebSocket upgrade at all.
func isUpgrade(r *http.Request) bool {
	return hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket")
}

// checkHandshake validates the parts of a WebSocket handshake request the
// handler does not choose, so that the handler only runs for a handshake
// that can succeed. It returns an HTTP status and message on failure.
func (o *Options) checkHandshake(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "WebSocket handshake must use GET"
	}
	if !r.ProtoAtLeast(1, 1) {
		return http.StatusUpgradeRequired, "WebSocket handshake needs HTTP/1.1"
	}
	if r.Header.Get(hdrVersion) != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return http.StatusBadRequest, "unsupported Sec-WebSocket-Version: only 13 is supported"
	}
	keys := r.Header.Values(hdrKey)
	if len(keys) != 1 {
		return http.StatusBadRequest, "WebSocket handshake needs exactly one Sec-WebSocket-Key"
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return http.StatusBadRequest, "invalid Sec-WebSocket-Key: must be 16 bytes, base64-encoded"
	}
	if !o.InsecureSkipVerify && !o.originAllowed(r) {
		return http.StatusForbidden, "origin not allowed"
	}
	if o.RequireSubprotocol && o.pickSubprotocol(r) == "" {
		return http.StatusBadRequest, "none of the offered subprotocols is supported; supported: " + strings.Join(o.Subprotocols, ", ")
	}
	return 0, ""
}

func (o *Options) pickSubprotocol(r *http.Request) string {
	for _, sp := range o.Subprotocols {
		if offered(r, sp) {
			return sp
		}
	}
	return ""
}

// originAllowed applies the same-origin rule and OriginPatterns, as
// coder/websocket does: no Origin header (not a browser) is allowed.
func (o *Options) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range o.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// Header names in canonical form: http.Header looks these up without
// allocating a canonical copy on every handshake.
const (
	hdrProtocol = "Sec-Websocket-Protocol"
	hdrVersion  = "Sec-Websocket-Version"
	hdrKey      = "Sec-Websocket-Key"
)
