package wsmw_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

var rateLimited = outcome{status: 101, code: 4003, reason: "Rate limit exceeded"}

// inFlight bounds the attempts of a burst that are in progress at once.
// The limiters' clocks are frozen during bursts, so to them all the
// attempts arrive at the same instant anyway; the bound keeps the test
// about the limiters rather than about how a small machine under the
// race detector copes with 500 simultaneous handshakes (a refusal's
// close handshake is cut after a second, and an overloaded machine can
// miss that).
const inFlight = 50

// burst makes n connection attempts, attempt i from IP ip(i), and
// counts what the clients saw.
func burst(t testing.TB, srv string, n int, ip func(i int) string) map[outcome]int {
	t.Helper()
	ctx := testutil.Ctx(t)
	var mu sync.Mutex
	counts := make(map[outcome]int)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := attempt(ctx, srv, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {ip(i)}}})
			if err != nil {
				got = outcome{status: -1, reason: err.Error()}
			}
			mu.Lock()
			counts[got]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return counts
}

func oneIP(int) string { return "198.51.100.1" }

// distinctIP returns a different IPv4 address for each i < 65536.
func distinctIP(i int) string { return fmt.Sprintf("10.0.%d.%d", i/256, i%256) }

// frozen is a clock that moves only when told.
type frozen struct{ ns atomic.Int64 }

func newFrozen() *frozen {
	f := &frozen{}
	f.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return f
}

func (f *frozen) now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *frozen) advance(d time.Duration) { f.ns.Add(int64(d)) }

// TestRateLimitBurst: 500 attempts at once, exact counts allowed and
// refused, with the demo server's settings and a clock that does not
// move during the burst.
func TestRateLimitBurst(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name      string
		opts      wsmw.RateLimitOptions
		ip        func(int) string
		attempts  int
		wantOK    int
		wantTable int
	}{
		{"one IP, demo settings", wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}, oneIP, 500, 40, 1},
		{"500 IPs, one attempt each", wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}, distinctIP, 500, 500, 500},
		{"50 IPs, ten attempts each, burst 3", wsmw.RateLimitOptions{PerSecond: 1, Burst: 3},
			func(i int) string { return distinctIP(i % 50) }, 500, 150, 50},
		{"burst defaults to PerSecond rounded up", wsmw.RateLimitOptions{PerSecond: 2.5}, oneIP, 500, 3, 1},
		{"500 IPs, table capped at 100", wsmw.RateLimitOptions{PerSecond: 1, Burst: 1, MaxKeys: 100}, distinctIP, 500, 500, 100},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rl := wsmw.NewRateLimiter(tc.opts)
			rl.SetClock(newFrozen().now)
			var ran atomic.Int32
			refused := &refusals{target: wsmw.ErrRateLimited}
			srv := serve(t, burstOptions(), func(ctx context.Context, c *wsroute.Conn) error {
				ran.Add(1)
				return c.Accept(ctx)
			}, refused.middleware, rl.Middleware())
			counts := burst(t, wsURL(srv, "/ws"), tc.attempts, tc.ip)
			testutil.Check(t, counts[accepted] == tc.wantOK, "outcomes: %v", counts)
			refused.check(t, counts, rateLimited, tc.attempts-tc.wantOK)
			testutil.Equal(t, int(ran.Load()), tc.wantOK)
			testutil.Equal(t, rl.Len(), tc.wantTable)
		})
	}
}

// TestRateLimitRealClock: with the real clock, what a burst gets is
// bounded by the bucket: Burst, plus what refills while it lasts.
func TestRateLimitRealClock(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	refused := &refusals{target: wsmw.ErrRateLimited}
	srv := serve(t, burstOptions(), func(ctx context.Context, c *wsroute.Conn) error {
		ran.Add(1)
		return c.Accept(ctx)
	}, refused.middleware, wsmw.RateLimit(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40}))
	start := time.Now()
	counts := burst(t, wsURL(srv, "/ws"), 500, oneIP)
	took := time.Since(start)
	refilled := int(20 * took.Seconds())
	testutil.Check(t, counts[accepted] >= 40 && counts[accepted] <= 40+refilled+1,
		"%d allowed in %v, want 40 plus at most %d refilled: outcomes %v", counts[accepted], took, refilled, counts)
	testutil.Equal(t, int(ran.Load()), counts[accepted])
	refused.check(t, counts, rateLimited, 500-counts[accepted])
}

func TestRateLimitEviction(t *testing.T) {
	t.Parallel()
	t.Run("idle keys are forgotten after Burst/PerSecond", func(t *testing.T) {
		t.Parallel()
		clock := newFrozen()
		rl := wsmw.NewRateLimiter(wsmw.RateLimitOptions{PerSecond: 20, Burst: 40})
		rl.SetClock(clock.now)
		for i := range 10 {
			rl.Allow(distinctIP(i))
		}
		testutil.Equal(t, rl.Len(), 10)
		clock.advance(1900 * time.Millisecond)
		rl.Allow(distinctIP(0)) // seen again: stays
		testutil.Equal(t, rl.Len(), 10)
		clock.advance(100 * time.Millisecond) // 2 s since the others
		rl.Allow("192.0.2.1")
		testutil.Equal(t, rl.Len(), 2)
		clock.advance(2 * time.Second)
		rl.Allow("192.0.2.1")
		testutil.Equal(t, rl.Len(), 1)
	})
	t.Run("the table never exceeds MaxKeys; the least recently seen goes", func(t *testing.T) {
		t.Parallel()
		rl := wsmw.NewRateLimiter(wsmw.RateLimitOptions{PerSecond: 1e-9, Burst: 1, MaxKeys: 100})
		rl.SetClock(newFrozen().now)
		for i := range 10000 {
			ok, _ := rl.Allow(distinctIP(i % 65536))
			testutil.Check(t, ok, "first attempt of a new IP refused")
			testutil.Check(t, rl.Len() <= 100, "table grew to %d", rl.Len())
		}
		testutil.Equal(t, rl.Len(), 100)
		ok, _ := rl.Allow(distinctIP(9999)) // remembered: refused
		testutil.Check(t, !ok, "a remembered IP got a second token")
		ok, _ = rl.Allow(distinctIP(0)) // forgotten long ago: fresh bucket
		testutil.Check(t, ok, "a forgotten IP was refused")
	})
	t.Run("forgetting an idle key changes nothing", func(t *testing.T) {
		t.Parallel()
		clock := newFrozen()
		rl := wsmw.NewRateLimiter(wsmw.RateLimitOptions{PerSecond: 2, Burst: 4})
		rl.SetClock(clock.now)
		for range 4 {
			ok, _ := rl.Allow("a")
			testutil.Check(t, ok, "burst refused")
		}
		ok, wait := rl.Allow("a")
		testutil.Check(t, !ok, "over the burst allowed")
		testutil.Equal(t, wait, 500*time.Millisecond)
		clock.advance(2 * time.Second) // IdleTimeout: forgotten, and full anyway
		rl.Allow("b")
		testutil.Equal(t, rl.Len(), 1)
		for range 4 {
			ok, _ := rl.Allow("a")
			testutil.Check(t, ok, "refilled burst refused")
		}
		ok, _ = rl.Allow("a")
		testutil.Check(t, !ok, "over the burst allowed after eviction")
	})
}

func TestRateLimitRejectHTTP(t *testing.T) {
	t.Parallel()
	rl := wsmw.NewRateLimiter(wsmw.RateLimitOptions{PerSecond: 0.4, Burst: 1, RejectHTTP: true})
	rl.SetClock(newFrozen().now)
	var ran atomic.Int32
	srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
		ran.Add(1)
		return c.Accept(ctx)
	}, rl.Middleware())
	got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.NoErr(t, err)
	testutil.Equal(t, got, accepted)
	_, resp, err := websocket.Dial(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
	testutil.Check(t, err != nil, "second attempt accepted")
	testutil.Equal(t, resp.StatusCode, http.StatusTooManyRequests)
	testutil.Equal(t, resp.Header.Get("Retry-After"), "3") // 2.5 s, rounded up
	testutil.Equal(t, ran.Load(), 1)
}

func TestIPKey(t *testing.T) {
	t.Parallel()
	testCases := []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::1", "::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	}
	keys := make(chan string, 1)
	srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
		keys <- wsmw.IPKey(c)
		return c.Reject(http.StatusTeapot, "")
	})
	for _, tc := range testCases {
		_, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {tc.ip}}})
		testutil.NoErr(t, err)
		testutil.Equal(t, <-keys, tc.want)
	}
}

func TestRateLimitInvalidOptionsPanic(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		opts wsmw.RateLimitOptions
		want string
	}{
		{wsmw.RateLimitOptions{}, "wsmw: RateLimitOptions.PerSecond must be positive"},
		{wsmw.RateLimitOptions{PerSecond: -1}, "wsmw: RateLimitOptions.PerSecond must be positive"},
		{wsmw.RateLimitOptions{PerSecond: math.NaN()}, "wsmw: RateLimitOptions.PerSecond must be positive"},
		{wsmw.RateLimitOptions{PerSecond: math.Inf(1)}, "wsmw: RateLimitOptions.PerSecond must be positive"},
		{wsmw.RateLimitOptions{PerSecond: 1, Burst: -1}, "wsmw: RateLimitOptions: Burst, MaxKeys and IdleTimeout must not be negative"},
		{wsmw.RateLimitOptions{PerSecond: 1, MaxKeys: -1}, "wsmw: RateLimitOptions: Burst"},
		{wsmw.RateLimitOptions{PerSecond: 1, IdleTimeout: -1}, "wsmw: RateLimitOptions: Burst"},
	}
	for i, tc := range testCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			mustPanic(t, tc.want, func() { wsmw.RateLimit(tc.opts) })
		})
	}
}
