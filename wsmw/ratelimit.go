package wsmw

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nexio-go/nexio/wsroute"
)

// RateLimitOptions configures RateLimit. PerSecond is required.
type RateLimitOptions struct {
	// PerSecond is how many connection attempts per second a client may
	// make, on average (a token bucket, golang.org/x/time/rate). It must
	// be positive; fractions are allowed (0.5: one every two seconds).
	// No default.
	PerSecond float64

	// Burst is how many attempts a client may make at once, after being
	// idle. Defaults to PerSecond rounded up, at least 1.
	Burst int

	// Key returns what a client is counted under.
	// Defaults to IPKey: the client IP, IPv6 grouped by /64.
	Key func(c *wsroute.Conn) string

	// MaxKeys bounds the table of clients, so that a flood of distinct
	// addresses cannot grow it without limit: when it is full, the client
	// seen least recently is forgotten (and starts afresh if it returns).
	// Defaults to 65536 (a few MiB at most).
	MaxKeys int

	// IdleTimeout is how long a client may go without an attempt before
	// it is forgotten. Defaults to Burst/PerSecond, the time an empty
	// bucket takes to fill up: forgetting a client after that changes
	// nothing. At least one second.
	IdleTimeout time.Duration

	// RejectHTTP refuses with HTTP 429 Too Many Requests and a
	// Retry-After header instead of accepting the WebSocket and closing
	// it with 4003 "Rate limit exceeded". Browsers cannot read an HTTP
	// refusal. Defaults to false: close 4003.
	RejectHTTP bool
}

// StatusRateLimited is the close code RateLimit refuses with (4003), the
// code Python's Nexio uses, so clients written for it work unchanged.
const StatusRateLimited wsroute.StatusCode = 4003

// RateLimit limits how often each client may open a connection: every
// handshake attempt that reaches it counts, refused or not by what comes
// after, so put it before Auth to limit attempts at guessing tokens. An
// attempt over the limit is accepted and closed with 4003 "Rate limit
// exceeded" (or answered 429 with Retry-After, with opts.RejectHTTP);
// the rest of the chain does not run, and the chain returns an error
// wrapping ErrRateLimited.
//
// Memory is bounded: clients idle for opts.IdleTimeout are forgotten,
// and at most opts.MaxKeys are remembered. Forgetting costs no goroutine:
// the table is trimmed as attempts arrive.
//
// The demo server's shape, 20 new connections per second per IP with
// bursts of 40:
//
//	wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40})
//
// RateLimit panics on invalid options (PerSecond not positive, a
// negative Burst, MaxKeys or IdleTimeout).
func RateLimit(opts RateLimitOptions) Middleware {
	return newRateLimiter(opts).middleware
}

// rateLimiter is a table of token buckets, one per key, kept in
// least-recently-seen order so the idle and the oldest are dropped
// from the back in O(1).
type rateLimiter struct {
	o   RateLimitOptions
	ref refusal
	now func() time.Time // time.Now; tests move it

	mu   sync.Mutex
	keys map[string]*bucket
	lru  bucket // sentinel: lru.next is the most recently seen, lru.prev the least
}

type bucket struct {
	key        string
	lim        *rate.Limiter
	seen       time.Time
	prev, next *bucket
}

func newRateLimiter(opts RateLimitOptions) *rateLimiter {
	o := opts
	if !(o.PerSecond > 0) || math.IsInf(o.PerSecond, 0) {
		panic(fmt.Sprintf("wsmw: RateLimitOptions.PerSecond must be positive and finite, got %v", o.PerSecond))
	}
	if o.Burst < 0 || o.MaxKeys < 0 || o.IdleTimeout < 0 {
		panic("wsmw: RateLimitOptions: Burst, MaxKeys and IdleTimeout must not be negative")
	}
	if o.Burst == 0 {
		o.Burst = max(1, int(math.Ceil(o.PerSecond)))
	}
	if o.Key == nil {
		o.Key = IPKey
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 1 << 16
	}
	if o.IdleTimeout == 0 {
		refill := float64(o.Burst) / o.PerSecond * float64(time.Second)
		o.IdleTimeout = time.Duration(min(refill, float64(math.MaxInt64)))
	}
	o.IdleTimeout = max(o.IdleTimeout, time.Second)
	l := &rateLimiter{
		o:   o,
		now: time.Now,
		ref: refusal{
			rejectHTTP: o.RejectHTTP,
			status:     http.StatusTooManyRequests,
			code:       StatusRateLimited,
			reason:     "Rate limit exceeded",
		},
		keys: make(map[string]*bucket),
	}
	l.lru.next, l.lru.prev = &l.lru, &l.lru
	return l
}

func (l *rateLimiter) middleware(next wsroute.HandlerFunc) wsroute.HandlerFunc {
	return func(ctx context.Context, c *wsroute.Conn) error {
		ok, wait := l.allow(l.o.Key(c))
		if ok {
			return next(ctx, c)
		}
		if l.o.RejectHTTP {
			c.ResponseHeader().Set("Retry-After", retryAfter(wait.Seconds()))
		}
		return refuse(c, l.ref, ErrRateLimited)
	}
}

// allow takes a token from key's bucket. When there is none it returns
// how long until there is.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for b := l.lru.prev; b != &l.lru && now.Sub(b.seen) >= l.o.IdleTimeout; b = l.lru.prev {
		l.drop(b)
	}
	b := l.keys[key]
	if b == nil {
		if len(l.keys) >= l.o.MaxKeys {
			l.drop(l.lru.prev)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(rate.Limit(l.o.PerSecond), l.o.Burst)}
		l.keys[key] = b
	} else {
		b.prev.next, b.next.prev = b.next, b.prev
	}
	b.prev, b.next = &l.lru, l.lru.next
	l.lru.next.prev = b
	l.lru.next = b
	if now.After(b.seen) {
		b.seen = now
	}
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - b.lim.TokensAt(now)) / l.o.PerSecond * float64(time.Second)
	return false, time.Duration(min(wait, float64(math.MaxInt64)))
}

func (l *rateLimiter) drop(b *bucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	delete(l.keys, b.key)
}

// len returns how many clients the table remembers.
func (l *rateLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
