package wsmw

import "time"

// Test-only access to the limiters' tables and clocks.

// RateLimiter exposes a RateLimit middleware's table.
type RateLimiter struct{ l *rateLimiter }

func NewRateLimiter(o RateLimitOptions) RateLimiter { return RateLimiter{newRateLimiter(o)} }

func (r RateLimiter) Middleware() Middleware { return r.l.middleware }

func (r RateLimiter) Len() int { return r.l.len() }

func (r RateLimiter) SetClock(now func() time.Time) { r.l.now = now }

func (r RateLimiter) Allow(key string) (bool, time.Duration) { return r.l.allow(key) }

// ConnLimiter exposes a MaxConns middleware's counts.
type ConnLimiter struct{ l *connLimiter }

func NewConnLimiter(o MaxConnsOptions) ConnLimiter { return ConnLimiter{newConnLimiter(o)} }

func (c ConnLimiter) Middleware() Middleware { return c.l.middleware }

func (c ConnLimiter) Counts() (total, keys int) { return c.l.counts() }

func RedactQuery(q string, also ...string) string { return redactQuery(q, also) }

var HeaderToken = headerToken
