package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// load runs WebSocket clients against the demo at base until ctx ends,
// so that every chart of the dashboard has something to show:
//
//   - echoers on /ws/echo, each sending a message every 50 ms;
//   - churn: every 100 ms a short connection that ends with 1000 from
//     the server (/ws/user/{id}), 1011 (/ws/error) or 4000 from the
//     client (/ws/echo);
//   - a talker sending 60 kB to /ws/broadcast every 20 ms, two listeners
//     reading it, and one that never reads: its queue fills and the hub
//     disconnects it as a slow consumer.
//
// Every loop is bounded by ctx, and load returns only when all of its
// clients are closed.
func load(ctx context.Context, t *testing.T, base string) (wait func()) {
	t.Helper()
	ws := "ws" + strings.TrimPrefix(base, "http")
	var wg sync.WaitGroup
	dial := func(path string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, ws+path, nil)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("load: dial %s: %v", path, err)
			}
			return nil
		}
		c.SetReadLimit(1 << 20)
		return c
	}
	every := func(d time.Duration, f func(i int) bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if !f(i) {
					return
				}
			}
		}()
	}
	drain := func(c *websocket.Conn) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseNow()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
	}

	for range 20 {
		c := dial("/ws/echo")
		if c == nil {
			break
		}
		drain(c)
		every(50*time.Millisecond, func(int) bool {
			return c.Write(ctx, websocket.MessageText, []byte("load")) == nil
		})
	}

	every(100*time.Millisecond, func(i int) bool {
		switch i % 3 {
		case 0:
			if c := dial(fmt.Sprintf("/ws/user/%d", i)); c != nil {
				drain(c) // the server says welcome, then closes with 1000
			}
		case 1:
			if c := dial("/ws/error"); c != nil {
				drain(c) // 1011
			}
		case 2:
			if c := dial("/ws/echo"); c != nil {
				c.Close(4000, "done")
			}
		}
		return true
	})

	for range 2 {
		if c := dial("/ws/broadcast"); c != nil {
			drain(c)
		}
	}
	if slow := dial("/ws/broadcast"); slow != nil {
		context.AfterFunc(ctx, func() { slow.CloseNow() }) // never read
	}
	if talker := dial("/ws/broadcast"); talker != nil {
		big := []byte(strings.Repeat("x", 60_000))
		drain(talker)
		every(20*time.Millisecond, func(int) bool {
			return talker.Write(ctx, websocket.MessageText, big) == nil
		})
	}
	return wg.Wait
}

// TestDashboardUnderLoad opens /dashboard in Chromium while load runs,
// waits until every chart shows non-zero data, checks each canvas has
// been drawn on, and takes a screenshot.
func TestDashboardUnderLoad(t *testing.T) {
	srv := startServer(t, "-rate", "0")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wait := load(ctx, t, srv.url)
	defer wait() // after cancel (deferred calls run last first)
	defer cancel()

	p := newPage(t, newBrowser(t), "dashboard")
	p.do("opening the dashboard", chromedp.Navigate(srv.url+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("#chart-closes")))
	const last = `(s => s.length ? s[s.length - 1] : 0)`
	checks := []struct{ what, expr string }{
		{"three scrapes", `nexioDashboard.polls >= 3 && nexioDashboard.error === ""`},
		{"open connections", last + `(nexioDashboard.connections) > 0`},
		{"messages in per second", last + `(nexioDashboard.messagesIn) > 0`},
		{"messages out per second", last + `(nexioDashboard.messagesOut) > 0`},
		{"close codes 1000, 1011 and 4000", `["1000", "1011", "4000"].every(c => c in nexioDashboard.closes)`},
		{"a slow consumer", last + `(nexioDashboard.slow) > 0`},
	}
	for _, c := range checks {
		p.waitLong(c.what, c.expr)
	}
	// Each chart has drawn more than its axes: count pixels of the two
	// series colours.
	for _, id := range []string{"chart-connections", "chart-messages", "chart-closes", "chart-slow"} {
		p.waitLong(id+" drawn", fmt.Sprintf(`(() => {
			const c = document.getElementById(%q);
			const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 0; i < d.length; i += 4) {
				const blue = d[i] === 0x2f && d[i+1] === 0x7d && d[i+2] === 0xe1;
				const orange = d[i] === 0xe8 && d[i+1] === 0x74 && d[i+2] === 0x3b;
				if (d[i+3] === 255 && (blue || orange)) n++;
			}
			return n > 50;
		})()`, id))
	}
	shot := filepath.Join(os.TempDir(), "nexio-e2e-dashboard.png")
	p.screenshot(shot)
	state, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](
		`JSON.stringify({connections: nexioDashboard.connections.at(-1), in: nexioDashboard.messagesIn.at(-1),
		  out: nexioDashboard.messagesOut.at(-1), closes: nexioDashboard.closes, slow: nexioDashboard.slow.at(-1)})`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard at the screenshot: %s", state)
	cancel()
	wait()
	srv.stop()
}

// waitLong is waitFor with room for the load to build up.
func (p *page) waitLong(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 45*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(40*time.Second)))
	if err != nil {
		dctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		state, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify(window.nexioDashboard)`))
		p.t.Fatalf("dashboard: waiting for %s: %v\nstate: %s", what, err, state)
	}
}
