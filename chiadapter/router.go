package chiadapter

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-chi/chi/v5"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// Router registers WebSocket routes on a chi.Router, each behind the
// WebSocket middleware stack of the Router and of the groups enclosing
// it. Make one with New. Register routes before serving, as chi
// requires; Use may also be called while serving.
type Router struct {
	chi    chi.Router
	opts   *wsroute.Options
	tree   *tree
	parent *Router
	mws    []wsmw.Middleware // guarded by tree.mu
}

// tree is shared by a Router and every Router made from it by Group,
// Route and With: one lock for their stacks, and a generation that
// changes whenever one of them does, so routes know to rebuild.
type tree struct {
	mu  sync.RWMutex
	gen atomic.Uint64
}

// New returns a Router that registers WebSocket routes on r, with opts
// for every route (nil means wsroute's defaults). Share one Options
// value, and its Tracker, between all the routes of a server.
//
// Unless opts.ClientIP is set, the routes take the client IP from chi's
// ClientIPFrom* middleware when one ran (see [ClientIP]), and from
// RemoteAddr otherwise. opts is copied: later changes to it are not seen.
//
// r's own HTTP middleware (r.Use) run before the WebSocket stack, as for
// any chi route: see the package documentation for which ones suit
// WebSocket routes.
func New(r chi.Router, opts *wsroute.Options) *Router {
	if r == nil {
		panic("chiadapter: New called with a nil chi.Router")
	}
	var o wsroute.Options
	if opts != nil {
		o = *opts
	}
	if o.ClientIP == nil {
		o.ClientIP = ClientIP
	}
	return &Router{chi: r, opts: &o, tree: &tree{}}
}

// Use appends WebSocket middleware to the Router's stack: the Nexio
// add_ws_middleware. They apply to every route of this Router and of
// its groups and sub-routers, registered before or after the call, in
// the order added, after the stacks of enclosing Routers. Use panics if
// one of mws is nil.
func (ws *Router) Use(mws ...wsmw.Middleware) {
	for _, mw := range mws {
		if mw == nil {
			panic("chiadapter: Use called with a nil Middleware")
		}
	}
	ws.tree.mu.Lock()
	ws.mws = append(ws.mws, mws...)
	ws.tree.gen.Add(1)
	ws.tree.mu.Unlock()
}

// Handle registers fn for WebSocket handshakes on pattern (a chi
// pattern: "/ws/user/{user_id}", or "GET /ws/echo" to name the method):
// the Nexio @app.ws_route. fn runs behind the Router's stack, before the
// handshake; requests that are not WebSocket handshakes get wsroute's
// 426 Upgrade Required and never reach the stack.
//
// Route parameters are URL-decoded, in Param and in Conn.Param alike:
// "/ws/user/al%20ice" gives "al ice", "/ws/user/a%2Fb" gives "a/b".
func (ws *Router) Handle(pattern string, fn wsroute.HandlerFunc) {
	if fn == nil {
		panic("chiadapter: Handle called with a nil HandlerFunc for " + pattern)
	}
	rt := &route{ws: ws, fn: fn}
	ws.chi.Handle(pattern, &entry{pattern: pattern, opts: ws.opts, next: ws.opts.Handle(rt.serve)})
}

// Group calls fn with a Router for the same path prefix whose stack
// starts with this one's: Use inside fn adds to the group only.
// It is chi's Group: routes registered in fn are ordinary chi routes.
func (ws *Router) Group(fn func(ws *Router)) {
	ws.chi.Group(func(r chi.Router) {
		fn(ws.child(r))
	})
}

// Route mounts a chi sub-router at pattern and calls fn with a Router for
// it, whose stack starts with this one's: Use inside fn adds to the
// sub-router only.
func (ws *Router) Route(pattern string, fn func(ws *Router)) {
	ws.chi.Route(pattern, func(r chi.Router) {
		fn(ws.child(r))
	})
}

// With returns a Router for the same path prefix whose stack is this
// one's followed by mws, for middleware that concern a few routes:
//
//	ws.With(wsmw.Auth(wsmw.AuthOptions{Token: "valid_token"})).Handle("/ws/secure/echo", echo)
func (ws *Router) With(mws ...wsmw.Middleware) *Router {
	child := ws.child(ws.chi.With())
	child.Use(mws...)
	return child
}

func (ws *Router) child(r chi.Router) *Router {
	return &Router{chi: r, opts: ws.opts, tree: ws.tree, parent: ws}
}

// stack returns the middleware that apply to the Router's routes,
// outermost Router first. The caller holds tree.mu.
func (ws *Router) stack() []wsmw.Middleware {
	var mws []wsmw.Middleware
	if ws.parent != nil {
		mws = ws.parent.stack()
	}
	return append(mws, ws.mws...)
}

// route is one registered handler. Its chain is built on first use and
// rebuilt after a Use anywhere in its tree, not per connection.
type route struct {
	ws    *Router
	fn    wsroute.HandlerFunc
	built atomic.Pointer[builtChain]
}

type builtChain struct {
	gen uint64
	h   wsroute.HandlerFunc
}

func (rt *route) serve(ctx context.Context, c *wsroute.Conn) error {
	return rt.handler()(ctx, c)
}

func (rt *route) handler() wsroute.HandlerFunc {
	t := rt.ws.tree
	if b := rt.built.Load(); b != nil && b.gen == t.gen.Load() {
		return b.h
	}
	t.mu.RLock()
	gen := t.gen.Load()
	mws := rt.ws.stack()
	t.mu.RUnlock()
	b := &builtChain{gen: gen, h: wsmw.Chain(mws...)(rt.fn)}
	rt.built.Store(b)
	return b.h
}

// entry is the http.Handler registered with chi for a route: it fixes up
// the request for wsroute, then hands it over.
type entry struct {
	pattern string
	opts    *wsroute.Options
	next    http.Handler
	warned  atomic.Bool
}

func (e *entry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.Context().Deadline(); ok && e.warned.CompareAndSwap(false, true) {
		l := slog.Default()
		if e.opts != nil && e.opts.Logger != nil {
			l = e.opts.Logger
		}
		l.Warn("chiadapter: a WebSocket route's request context has a deadline "+
			"(chi's middleware.Timeout?): it bounds the handshake only, the connection outlives it, "+
			"and Timeout writes a 504 on the hijacked connection when the handler returns; "+
			"keep such middleware off WebSocket routes", "pattern", e.pattern)
	}
	decodeParams(r)
	e.next.ServeHTTP(w, r)
}
