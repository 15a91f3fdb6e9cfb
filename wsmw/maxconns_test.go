package wsmw_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

var tryAgainLater = outcome{status: 101, code: 1013, reason: "try again later"}

// holdServer serves a handler that accepts, says "held", and keeps the
// connection open until release is closed.
func holdServer(t *testing.T, mws ...wsmw.Middleware) (srv string, release func()) {
	t.Helper()
	stop := make(chan struct{})
	s := serve(t, burstOptions(), func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		if err := c.SendText(ctx, "held"); err != nil {
			return err
		}
		c.CloseRead()
		select {
		case <-stop:
		case <-c.Done():
		}
		return nil
	}, mws...)
	var once sync.Once
	release = func() { once.Do(func() { close(stop) }) }
	t.Cleanup(release)
	return wsURL(s, "/ws"), release
}

// holdBurst makes n attempts, at most inFlight at a time; the ones let
// through stay open.
// It returns the counts, the IPs of the held connections, and a function
// that hangs up on them.
func holdBurst(t *testing.T, url string, n int, ip func(int) string) (map[outcome]int, map[string]int, func()) {
	t.Helper()
	ctx := testutil.Ctx(t)
	var mu sync.Mutex
	counts := make(map[outcome]int)
	held := make(map[string]int)
	var conns []*websocket.Conn
	hangUp := func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}
	t.Cleanup(hangUp)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			got, kept := holdAttempt(ctx, url, ip(i))
			<-sem
			mu.Lock()
			defer mu.Unlock()
			counts[got]++
			if kept != nil {
				held[ip(i)]++
				conns = append(conns, kept)
			}
		}()
	}
	wg.Wait()
	return counts, held, hangUp
}

var held = outcome{status: 101, code: -2, reason: "held"}

func holdAttempt(ctx context.Context, url, ip string) (outcome, *websocket.Conn) {
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-IP": {ip}}})
	if err != nil {
		if resp != nil {
			return outcome{status: resp.StatusCode}, nil
		}
		return outcome{status: -1, reason: err.Error()}, nil
	}
	_, msg, err := c.Read(ctx)
	if err == nil && string(msg) == "held" {
		return held, c
	}
	defer c.CloseNow()
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return outcome{status: 101, code: ce.Code, reason: ce.Reason}, nil
	}
	if err == nil {
		return outcome{status: 101, code: -3, reason: string(msg)}, nil
	}
	return outcome{status: 101, code: -1, reason: err.Error()}, nil
}

func TestMaxConnsBurst(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name      string
		opts      wsmw.MaxConnsOptions
		ip        func(int) string
		wantHeld  int
		wantPerIP int // the most held by one IP
	}{
		{"one IP, PerIP 10", wsmw.MaxConnsOptions{PerIP: 10}, oneIP, 10, 10},
		{"one IP, Total 10", wsmw.MaxConnsOptions{Total: 10}, oneIP, 10, 10},
		{"500 IPs, Total 50", wsmw.MaxConnsOptions{Total: 50}, distinctIP, 50, 1},
		// 100 IPs could hold 200 with PerIP 2; the total stops them at 150.
		{"100 IPs, PerIP 2, Total 150", wsmw.MaxConnsOptions{PerIP: 2, Total: 150},
			func(i int) string { return distinctIP(i % 100) }, 150, 2},
		{"100 IPs, PerIP 2, Total 1000", wsmw.MaxConnsOptions{PerIP: 2, Total: 1000},
			func(i int) string { return distinctIP(i % 100) }, 200, 2},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := wsmw.NewConnLimiter(tc.opts)
			refused := &refusals{target: wsmw.ErrTooManyConns}
			url, _ := holdServer(t, refused.middleware, cl.Middleware())
			counts, heldBy, hangUp := holdBurst(t, url, 500, tc.ip)
			testutil.Check(t, counts[held] == tc.wantHeld, "outcomes: %v", counts)
			refused.check(t, counts, tryAgainLater, 500-tc.wantHeld)
			most := 0
			for _, n := range heldBy {
				most = max(most, n)
			}
			testutil.Equal(t, most, tc.wantPerIP)
			total, keys := cl.Counts()
			testutil.Equal(t, total, tc.wantHeld)
			if tc.opts.PerIP > 0 {
				testutil.Equal(t, keys, len(heldBy))
			}

			// Clients leaving free every place, and the table empties.
			hangUp()
			testutil.Eventually(t, func() bool { total, keys := cl.Counts(); return total == 0 && keys == 0 },
				"places not released: %v", counts)
			got, kept := holdAttempt(testutil.Ctx(t), url, tc.ip(0))
			testutil.Equal(t, got, held)
			kept.CloseNow()
		})
	}
}

func TestMaxConnsReleasesOnEveryEnd(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name    string
		handler wsroute.HandlerFunc
	}{
		{"handler returns", func(ctx context.Context, c *wsroute.Conn) error { return c.Accept(ctx) }},
		{"handler panics", func(ctx context.Context, c *wsroute.Conn) error { panic("bug") }},
		{"handler refuses", func(ctx context.Context, c *wsroute.Conn) error { return c.Reject(http.StatusTeapot, "") }},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := wsmw.NewConnLimiter(wsmw.MaxConnsOptions{Total: 1, PerIP: 1})
			srv := serve(t, nil, tc.handler, cl.Middleware())
			for range 5 {
				got, err := attempt(testutil.Ctx(t), wsURL(srv, "/ws"), nil)
				testutil.NoErr(t, err)
				testutil.Check(t, got != tryAgainLater, "a place was not released")
			}
			total, keys := cl.Counts()
			testutil.Equal(t, total, 0)
			testutil.Equal(t, keys, 0)
		})
	}
}

func TestMaxConnsRejectHTTP(t *testing.T) {
	t.Parallel()
	url, _ := holdServer(t, wsmw.MaxConns(wsmw.MaxConnsOptions{PerIP: 1, RejectHTTP: true}))
	got, kept := holdAttempt(testutil.Ctx(t), url, "192.0.2.1")
	testutil.Equal(t, got, held)
	defer kept.CloseNow()
	got, _ = holdAttempt(testutil.Ctx(t), url, "192.0.2.1")
	testutil.Equal(t, got, outcome{status: http.StatusServiceUnavailable})
	got, other := holdAttempt(testutil.Ctx(t), url, "192.0.2.2")
	testutil.Equal(t, got, held)
	other.CloseNow()
}

func TestMaxConnsInvalidOptionsPanic(t *testing.T) {
	t.Parallel()
	for _, o := range []wsmw.MaxConnsOptions{{}, {Total: -1}, {PerIP: -1}, {Total: 1, PerIP: -1}} {
		mustPanic(t, "wsmw: MaxConnsOptions: set Total, PerIP or both", func() { wsmw.MaxConns(o) })
	}
}

// TestMaxConnsHoldsADetachedConnectionUntilItEnds: a connection whose
// handler returned after wsroute's Detach keeps its place until it ends,
// and gives it back then.
func TestMaxConnsHoldsADetachedConnectionUntilItEnds(t *testing.T) {
	t.Parallel()
	returned := make(chan struct{}, 4)
	srv := serve(t, nil, func(ctx context.Context, c *wsroute.Conn) error {
		defer func() { returned <- struct{}{} }()
		if err := c.Accept(ctx); err != nil {
			return err
		}
		return c.Detach(ctx, func(ctx context.Context, c *wsroute.Conn, m wsroute.Message) error {
			return c.SendText(ctx, "Echo: "+m.Text())
		})
	}, wsmw.MaxConns(wsmw.MaxConnsOptions{Total: 1}))
	url := wsURL(srv, "/ws")
	ctx := testutil.Ctx(t)

	c := dial(t, srv, "/ws", nil)
	testutil.Equal(t, roundTrip(t, c, "a"), "Echo: a")
	<-returned
	got, err := attempt(ctx, url, nil)
	testutil.NoErr(t, err)
	testutil.Equal(t, got, tryAgainLater)
	testutil.Equal(t, roundTrip(t, c, "b"), "Echo: b")

	testutil.NoErr(t, c.Close(websocket.StatusNormalClosure, ""))
	// The place is given back when the connection has ended, which
	// the client's Close does not wait for.
	testutil.Eventually(t, func() bool {
		c2, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return false
		}
		defer c2.CloseNow()
		if c2.Write(ctx, websocket.MessageText, []byte("c")) != nil {
			return false
		}
		_, msg, err := c2.Read(ctx)
		return err == nil && string(msg) == "Echo: c"
	}, "the place of the detached connection was not given back when it ended")
}
