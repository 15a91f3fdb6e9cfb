package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// The stack under test is the demo server's (example/routes.go), composed
// here so that the tests can count what it does: the same wsroute
// options, the same middleware in the same order (Logger, RateLimit,
// then MaxConns, and Auth on /ws/secure/echo), a hub for
// /ws/rooms/{room}, and a real http.Server with ReadHeaderTimeout on a
// 127.0.0.1 listener.

// Secrets the tests plant, and look for where they must not be.
const (
	// validToken opens /ws/secure/echo, as in the demo.
	validToken = "valid_token"
	// wrongToken is refused; it contains validToken so that a leak of
	// either is found by one search.
	wrongToken = "valid_token-but-wrong"
	// internalSecret is in the error /ws/fail returns and the panic of
	// /ws/panic: it may reach an error-level log line, nothing else.
	internalSecret = "hunter2-db-password"
)

// stackConfig configures a stack. Zero fields mean the demo's settings
// where the demo has one.
type stackConfig struct {
	node string // name in reports; the hub's node name with a broker
	// broker, when set, makes the hub's Broker with the stack's logger;
	// nil: rooms in memory.
	broker   func(*slog.Logger) hub.Broker
	hubOpts  hub.Options // Logger and Broker are filled in
	wsOpts   wsroute.Options
	rate     float64       // RateLimit per client IP and second; 0: the demo's 20; <0: off
	burst    int           // 0: twice rate, as the demo
	maxKeys  int           // RateLimitOptions.MaxKeys; 0: its default
	idle     time.Duration // RateLimitOptions.IdleTimeout; 0: its default
	maxTotal int           // MaxConns Total; 0: 5000
	maxPerIP int           // MaxConns PerIP; 0: 30
	msgRate  float64       // MessageRate on /ws/echo; 0: 50 per second, burst 100
	// trustRealIP puts chi's middleware.ClientIPFromHeader("X-Real-IP")
	// in front (and Options.ClientIP reading it), so that tests can pose
	// as many clients.
	trustRealIP       bool
	readHeaderTimeout time.Duration // 0: -chaos.readheader
	maxHeaderBytes    int           // 0: net/http's default (1 MiB)
	logLevel          slog.Level    // what the scanner receives; the demo logs Info
}

// stack is one running server: a node.
type stack struct {
	t        testing.TB
	cfg      stackConfig
	addr     string // 127.0.0.1:port
	srv      *http.Server
	ln       *countingListener
	tracker  *wsroute.Tracker
	hub      *hub.Hub
	outcomes *outcomes
	logs     *logScanner
	served   chan error

	// onBroadcast, when set before traffic starts, sees every broadcast
	// of /ws/rooms/{room} after the hub returned; start is when it was
	// called.
	onBroadcast func(room, msg string, start time.Time, err error)

	stop func() // doShutdown, once
}

func newStack(t testing.TB, cfg stackConfig) *stack {
	t.Helper()
	if cfg.node == "" {
		cfg.node = "A"
	}
	if cfg.rate == 0 {
		cfg.rate = 20
	}
	if cfg.burst == 0 {
		cfg.burst = int(2 * cfg.rate)
	}
	if cfg.maxTotal == 0 {
		cfg.maxTotal = 5000
	}
	if cfg.maxPerIP == 0 {
		cfg.maxPerIP = 30
	}
	if cfg.msgRate == 0 {
		cfg.msgRate = 50
	}
	if cfg.readHeaderTimeout == 0 {
		cfg.readHeaderTimeout = *headerTimeout
	}
	s := &stack{t: t, cfg: cfg, tracker: wsroute.NewTracker(), outcomes: newOutcomes(), served: make(chan error, 1)}
	s.logs = newLogScanner()
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: cfg.logLevel}))

	hopts := cfg.hubOpts
	hopts.Logger = log
	if cfg.broker != nil {
		hopts.Broker = cfg.broker(log)
		hopts.Node = cfg.node
	}
	s.hub = hub.New(&hopts)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	s.ln = &countingListener{Listener: ln}
	s.addr = ln.Addr().String()
	var h http.Handler = s.routes(log)
	if cfg.trustRealIP {
		// The clients are on loopback: trust X-Real-IP from there, as
		// one would from a proxy's addresses.
		h = middleware.ClientIPFromHeader("X-Real-IP", "127.0.0.0/8")(h)
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		MaxHeaderBytes:    cfg.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { s.served <- s.srv.Serve(s.ln) }()
	s.stop = onceRef(s.doShutdown)
	t.Cleanup(s.stop)
	return s
}

// onceRef returns a function that calls fn the first time only, and then
// drops it: testing keeps every cleanup function reachable until the
// test ends, which would keep a stopped stack, and everything it
// recorded, on the heap being measured.
func onceRef(fn func()) func() {
	var mu sync.Mutex
	return func() {
		mu.Lock()
		f := fn
		fn = nil
		mu.Unlock()
		if f != nil {
			f()
		}
	}
}

// routes is the demo's route table, with two routes that fail on
// purpose (/ws/fail, /ws/panic) and one that refuses every handshake
// after the middleware ran (/ws/reject).
func (s *stack) routes(log *slog.Logger) http.Handler {
	cfg := s.cfg
	opts := cfg.wsOpts
	opts.Tracker = s.tracker
	opts.Logger = log
	if cfg.trustRealIP {
		opts.ClientIP = func(r *http.Request) string { return middleware.GetClientIP(r.Context()) }
	}
	common := []wsmw.Middleware{s.outcomes.middleware(), wsmw.Logger(log)}
	if cfg.rate > 0 {
		common = append(common, wsmw.RateLimit(wsmw.RateLimitOptions{
			PerSecond: cfg.rate, Burst: cfg.burst, MaxKeys: cfg.maxKeys, IdleTimeout: cfg.idle,
		}))
	}
	common = append(common, wsmw.MaxConns(wsmw.MaxConnsOptions{Total: cfg.maxTotal, PerIP: cfg.maxPerIP}))
	ws := func(fn wsroute.HandlerFunc, more ...wsmw.Middleware) http.Handler {
		mws := append(append([]wsmw.Middleware(nil), common...), more...)
		return opts.Handle(wsmw.Chain(mws...)(fn))
	}
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", ws(echo, wsmw.MessageRate(wsmw.MessageRateOptions{PerSecond: cfg.msgRate, Burst: int(2 * cfg.msgRate)})))
	mux.Handle("/ws/rooms/{room}", ws(s.room))
	mux.Handle("/ws/secure/echo", ws(echo, wsmw.Auth(wsmw.AuthOptions{Token: validToken})))
	mux.Handle("/ws/fail", ws(fail))
	mux.Handle("/ws/panic", ws(panicky))
	mux.Handle("/ws/reject", ws(reject))
	mux.Handle("/ws/fail-early", ws(failEarly))
	mux.Handle("/ws/slow-accept", ws(slowAccept))
	mux.Handle("/ws/renamed-token", ws(echo, wsmw.Auth(wsmw.AuthOptions{Token: validToken, Query: "s"})))
	return mux
}

// echo is the demo's /ws/echo.
func echo(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, "Echo: "+msg); err != nil {
			return err
		}
	}
}

// fail returns an internal error whose text must stay in the server's
// error log: the client sees 1011 "internal error".
func fail(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	return fmt.Errorf("query users: connect postgres://app:%s@10.0.0.7/app: connection refused", internalSecret)
}

// panicky panics with a secret: 1011 "internal error" to the client,
// the stack in an error-level log line only.
func panicky(ctx context.Context, c *wsroute.Conn) error {
	if err := c.Accept(ctx); err != nil {
		return err
	}
	panic("corrupted state near " + internalSecret)
}

// failEarly fails before accepting: the client gets a bare 500.
func failEarly(ctx context.Context, c *wsroute.Conn) error {
	return fmt.Errorf("load session: redis://:%s@10.0.0.8: timeout", internalSecret)
}

// slowAccept does some work (a lookup, say) before accepting, during
// which the client may give up.
func slowAccept(ctx context.Context, c *wsroute.Conn) error {
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	return c.Accept(ctx)
}

// reject refuses with 403 once the middleware have let the attempt
// through: a cheap way to make the rate limiter count many clients.
func reject(ctx context.Context, c *wsroute.Conn) error {
	return c.Reject(http.StatusForbidden, "no")
}

// room is the demo's /ws/rooms/{room}: each text message goes unchanged
// to every other member, on every node sharing the broker.
func (s *stack) room(ctx context.Context, c *wsroute.Conn) error {
	room := c.Param("room")
	rooms := []string{room}
	if also := c.Query("also"); also != "" {
		rooms = append(rooms, also) // TestLoad's members are in "all" too
	}
	if err := c.Accept(ctx); err != nil {
		return err
	}
	if err := s.hub.Join(c, rooms...); err != nil {
		if errors.Is(err, hub.ErrConnClosed) {
			return nil
		}
		return err
	}
	for {
		msg, err := c.ReceiveText(ctx)
		if err != nil {
			return err
		}
		start := time.Now()
		err = s.hub.BroadcastText(ctx, room, msg, hub.Except(c))
		if s.onBroadcast != nil {
			s.onBroadcast(room, msg, start, err)
		}
		switch {
		case errors.Is(err, hub.ErrPublish):
			// Redis is down: local members were served, the broker
			// counts and logs the outage (as the demo does).
		case err != nil:
			return err
		}
	}
}

// shutdown stops the node as the demo does: every WebSocket gets 1001,
// the hub and its broker stop, then the HTTP server. It is idempotent.
func (s *stack) shutdown() { s.stop() }

func (s *stack) doShutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.tracker.Shutdown(ctx); err != nil {
		s.t.Errorf("node %s: tracker shutdown: %v", s.cfg.node, err)
	}
	if err := s.hub.Shutdown(ctx); err != nil {
		s.t.Errorf("node %s: hub shutdown: %v", s.cfg.node, err)
	}
	s.srv.Close() // and the half-open handshakes net/http still reads
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		s.t.Errorf("node %s: Serve: %v", s.cfg.node, err)
	}
}

// countingListener counts the TCP connections the server accepted and
// those still open (hijacked ones too: wsroute closes what it got from
// Hijack, which is the connection this listener returned).
type countingListener struct {
	net.Listener
	accepted atomic.Int64
	open     atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
