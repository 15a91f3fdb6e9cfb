package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// lb is a TCP load balancer the test controls, in front of the demo
// servers: the page loads from it and reconnects to it, as it would to a
// real load balancer, and the test decides where it forwards (point), cuts
// every connection through it (the page's network drops), or refuses new
// ones for a while (down). Working at the TCP level, it carries the page,
// the presence snapshot and the WebSocket alike, and the Host and Origin
// the demo sees are the balancer's, as with a real one.
type lb struct {
	t   *testing.T
	ln  net.Listener
	url string

	mu      sync.Mutex
	backend string // host:port of the demo server now served
	down    bool   // refusing: accepted connections are closed at once
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // the accept loop and every copy
}

func newLB(t *testing.T, backendURL string) *lb {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{t: t, ln: ln, url: "http://" + ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	l.point(backendURL)
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(func() {
		ln.Close()
		l.cut()
		l.wg.Wait()
	})
	return l
}

// point sends new connections to the demo server at backendURL.
func (l *lb) point(backendURL string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backend = strings.TrimPrefix(backendURL, "http://")
}

// setDown makes the balancer refuse (true) or accept (false) connections.
func (l *lb) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

// cut drops every connection through the balancer, without a WebSocket
// close: the page sees 1006, as when its network goes.
func (l *lb) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

func (l *lb) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down, backend := l.down, l.backend
		l.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		b, err := net.DialTimeout("tcp", backend, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[b] = struct{}{}, struct{}{}
		l.mu.Unlock()
		// Two copies per connection; when either side ends, both close.
		l.wg.Add(2)
		for _, p := range [][2]net.Conn{{c, b}, {b, c}} {
			go func() {
				defer l.wg.Done()
				io.Copy(p[0], p[1])
				p[0].Close()
				p[1].Close()
				l.mu.Lock()
				delete(l.conns, p[0])
				delete(l.conns, p[1])
				l.mu.Unlock()
			}()
		}
	}
}

// messages returns the texts of the chat messages p shows, in order.
func (p *page) messages() []string {
	p.t.Helper()
	var out []string
	p.do("reading the log", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		out, err = chromedp.Evaluate[[]string](`[...document.querySelectorAll("#log li.msg .text")].map(e => e.textContent)`)(ctx, t)
		return err
	}))
	return out
}

// eval runs a JavaScript expression and returns its value.
func eval[T any](p *page, what, expr string) T {
	p.t.Helper()
	var v T
	p.do(what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		v, err = chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise)(ctx, t)
		return err
	}))
	return v
}

func (p *page) waitOpen() {
	p.t.Helper()
	p.waitFor("the connection", `document.getElementById("status").dataset.state === "open"`)
}

// waitSent waits until p's own message text is confirmed by the server.
func (p *page) waitSent(text string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%q marked sent", text), fmt.Sprintf(
		`[...document.querySelectorAll("#log li.mine")].some(li => li.querySelector(".text").textContent === %s && li.dataset.state === "sent" && li.dataset.offset > 0)`,
		js(text)))
}

// waitMessages waits until p shows exactly want as its chat messages.
func (p *page) waitMessages(want []string) {
	p.t.Helper()
	b, _ := json.Marshal(want)
	expr := fmt.Sprintf(`(() => {
		const want = JSON.parse(%s);
		const got = [...document.querySelectorAll("#log li.msg .text")].map(e => e.textContent);
		return got.length === want.length && got.every((x, i) => x === want[i]);
	})()`, js(string(b)))
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		p.t.Fatalf("%s: want messages %q, shows %q: %v", p.name, want, p.messages(), err)
	}
}

func requireRedis(t *testing.T) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis is required (NEXIO_REQUIRE_REDIS=1) but %s does not answer: %v", addr, err)
		}
		t.Skipf("no Redis on %s: %v", addr, err)
	}
	c.Close()
	return "redis://" + addr + "/0"
}

// TestLiveRecoversWhatWasMissed: bob's network drops; ann goes on
// talking; bob types meanwhile. When bob is back, his page shows every
// message he missed, once, in order, with a line saying how many, and
// his own message is sent once and marked sent.
func TestLiveRecoversWhatWasMissed(t *testing.T) {
	srv := startServer(t)
	link := newLB(t, srv.url)
	browser := newBrowser(t)
	ann := newPage(t, browser, "ann")
	bob := newPage(t, browser, "bob")
	room := fmt.Sprintf("live-%d", time.Now().UnixNano())

	ann.join(srv.url, room)
	bob.join(link.url, room)
	ann.waitPresence("bob")
	bob.waitPresence("ann")
	ann.waitFor("bob joined line", `[...document.querySelectorAll('#log li[data-event="join"]')].some(li => li.dataset.who === "bob")`)

	ann.send("before 1")
	ann.waitSent("before 1")
	bob.send("before 2")
	bob.waitSent("before 2")
	// Focus stays in the message box after clicking Send.
	testEq(t, eval[string](bob, "the focus", `document.activeElement.id`), "message")

	// Bob's network goes: every connection through his balancer drops,
	// and new ones are refused until it is back.
	link.setDown(true)
	link.cut()
	// The page retries meanwhile, so the status is read in one go
	// while it waits: the words, the countdown, the link.
	bob.waitFor("the lost connection", `document.querySelector('#log li[data-close-code="1006"]') !== null &&
		document.getElementById("status").dataset.state === "waiting" &&
		/^Connection lost — reconnecting… Next try in \d+ s\.$/.test(document.getElementById("status-text").textContent) &&
		!document.getElementById("retry").hidden`)

	missed := []string{"while away 1", "while away 2", "while away 3 <b>x</b>", "while away 4", "while away 5"}
	for _, m := range missed {
		ann.send(m)
		ann.waitSent(m)
	}
	bob.send("typed offline")
	bob.waitFor("the queued message", `document.querySelector('#log li.mine[data-state="queued"]') !== null`)

	link.setDown(false)
	back := time.Now()
	bob.waitOpen()
	want := append([]string{"before 1", "before 2"}, missed...)
	want = append(want, "typed offline")
	bob.waitMessages(want)
	t.Logf("bob's page showed every missed message %v after his network came back", time.Since(back).Round(time.Millisecond))
	bob.waitSent("typed offline")
	ann.waitMessages(want)
	// Nothing more arrives later either: each message once.
	ann.send("after")
	bob.waitMessages(append(want, "after"))
	ann.waitMessages(append(want, "after"))
	away := eval[string](bob, "the away line", `document.querySelector('#log li.away')?.textContent ?? ""`)
	if !strings.Contains(away, "5 messages while you were away") {
		t.Fatalf("away line: %q", away)
	}
	testEq(t, eval[bool](bob, "no gap warning", `document.querySelector('#log li[data-event="gap"]') === null`), true)
	bob.screenshot(filepath.Join(os.TempDir(), "nexio-e2e-live-recovered.png"))

	// Leaving is a presence event: ann's page says so, and drops bob.
	bob.do("leaving", chromedp.Click(chromedp.CSS("#leave")))
	ann.waitFor("bob left line", `[...document.querySelectorAll('#log li[data-event="leave"]')].some(li => li.dataset.who === "bob")`)
	ann.waitFor("bob gone from the list", `![...document.querySelectorAll("#presence .member")].some(e => e.textContent === "bob")`)
}

// TestLiveFailover: bob's page is served by instance two through the load
// balancer. Instance two is killed (no goodbye); the balancer sends bob
// to instance one, where he resumes from Redis' history with nothing
// lost, and the ghost of his old connection leaves the room within 10 s.
func TestLiveFailover(t *testing.T) {
	redisURL := requireRedis(t)
	one := startServer(t, "-redis", redisURL)
	two := startServer(t, "-redis", redisURL)
	if strings.Contains(one.logs.String(), "keeps no history") {
		t.Skip("this redisbroker keeps no history (not a hub.HistoryBroker): nothing to recover on another instance")
	}
	lb := newLB(t, two.url)
	browser := newBrowser(t)
	ann := newPage(t, browser, "ann")
	bob := newPage(t, browser, "bob")
	room := fmt.Sprintf("failover-%d", time.Now().UnixNano())

	ann.join(one.url, room)
	bob.join(lb.url, room)
	ann.waitPresence("bob")
	bob.waitPresence("ann")
	ann.send("hello from one")
	bob.waitMessage("ann", "hello from one")
	bob.send("hello from two")
	ann.waitMessage("bob", "hello from two")
	bob.waitSent("hello from two")

	// Instance two dies; the balancer sends new connections to one
	// only once the messages below were sent, so they are missed.
	lb.setDown(true)
	if err := two.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-two.exited
	bob.waitFor("the lost connection", `document.getElementById("status").dataset.state === "waiting"`)
	missed := []string{"missed 1", "missed 2", "missed 3"}
	for _, m := range missed {
		ann.send(m)
		ann.waitSent(m)
	}
	lb.point(one.url)
	lb.setDown(false)
	// Retry now, rather than wait for the backoff (if the backoff has
	// not just tried, and hidden the link).
	eval[bool](bob, "retry now", `(document.getElementById("retry").click(), true)`)
	bob.waitOpen()
	want := append([]string{"hello from one", "hello from two"}, missed...)
	bob.waitMessages(want)
	away := eval[string](bob, "the away line", `document.querySelector('#log li.away')?.textContent ?? ""`)
	if !strings.Contains(away, "3 messages while you were away") {
		t.Fatalf("away line: %q", away)
	}
	bob.send("back on one")
	ann.waitMessages(append(want, "back on one"))
	bob.waitSent("back on one")

	// The ghost: bob's connection on the dead instance leaves the
	// room's presence within 10 s of the kill (12 s: the slack is the
	// polling and a loaded machine).
	for {
		resp, err := http.Get(one.url + "/live/" + room + "/presence")
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Members []struct{ Name string } }
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(p.Members))
		for i, m := range p.Members {
			names[i] = m.Name
		}
		slices.Sort(names)
		if slices.Equal(names, []string{"ann", "bob"}) {
			t.Logf("bob's ghost on the killed instance left the room %v after the kill", time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Since(killed) > 12*time.Second {
			t.Fatalf("presence still %q %v after instance two was killed", names, time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ann.waitPresence("bob")
}

// TestLiveRetriesAtOnce: while the page waits out its backoff, the
// browser's online event, the tab becoming visible again and the "retry
// now" link reconnect at once, before the countdown ends.
func TestLiveRetriesAtOnce(t *testing.T) {
	srv := startServer(t)
	link := newLB(t, srv.url)
	p := newPage(t, newBrowser(t), "cat")
	p.join(link.url, "retry")

	for _, trigger := range []struct{ name, js string }{
		{"online event", `window.dispatchEvent(new Event("online"))`},
		{"tab visible again", `document.dispatchEvent(new Event("visibilitychange"))`},
		{"retry link", `document.getElementById("retry").click()`},
	} {
		link.setDown(true)
		link.cut()
		// Let it fail a few times, until the next try is seconds away.
		p.waitFor("a long backoff", `(() => { const m = /Next try in (\d+) s/.exec(document.getElementById("status-text").textContent); return m && Number(m[1]) >= 3; })()`)
		link.setDown(false)
		ok := eval[bool](p, trigger.name, fmt.Sprintf(`new Promise((resolve) => {
			const due = Date.now() + 1500;
			%s;
			const check = () => {
				if (document.getElementById("status").dataset.state === "open") resolve(Date.now() < due);
				else if (Date.now() > due) resolve(false);
				else setTimeout(check, 20);
			};
			check();
		})`, trigger.js))
		if !ok {
			t.Fatalf("%s: not reconnected within 1.5 s, while the backoff had seconds to go", trigger.name)
		}
	}
}

// TestLivePhone: on a 390 px wide phone the page does not scroll
// sideways, and the presence list and the Leave button can be reached and
// tapped.
func TestLivePhone(t *testing.T) {
	srv := startServer(t)
	p := newPage(t, newBrowser(t), "dee")
	p.do("a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	p.join(srv.url, "phone")
	p.waitPresence("dee")
	testEq(t, eval[bool](p, "no sideways scroll", `document.documentElement.scrollWidth <= window.innerWidth`), true)
	for _, sel := range []string{"#leave", "#presence", "#message", "#send"} {
		reachable := eval[bool](p, "reaching "+sel, fmt.Sprintf(`(() => {
			const el = document.querySelector(%s);
			el.scrollIntoView({block: "center", inline: "nearest"});
			const r = el.getBoundingClientRect();
			if (r.width === 0 || r.height === 0 || r.left < 0 || r.right > window.innerWidth) return false;
			const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 10));
			return hit !== null && (hit === el || el.contains(hit));
		})()`, js(sel)))
		if !reachable {
			t.Errorf("%s cannot be reached on a 390 px screen", sel)
		}
	}
	p.screenshot(filepath.Join(os.TempDir(), "nexio-e2e-live-phone.png"))
	p.do("leaving", chromedp.Click(chromedp.CSS("#leave")))
	p.waitFor("left", `document.getElementById("status").dataset.state === "idle"`)
}

// TestLiveSmallThings: the favicon is served, a "new messages" hint shows
// when the reader has scrolled up, and one's own message scrolls into
// view.
func TestLiveSmallThings(t *testing.T) {
	srv := startServer(t)
	browser := newBrowser(t)
	ann := newPage(t, browser, "ann")
	bob := newPage(t, browser, "bob")
	ann.join(srv.url, "small")
	bob.join(srv.url, "small")
	testEq(t, eval[string](ann, "the icons", `Promise.all(["/favicon.ico", document.querySelector("link[rel=icon]").href].map(u => fetch(u).then(r => r.status + " " + r.headers.get("content-type")))).then(a => a.join(", "))`),
		"200 image/svg+xml, 200 image/svg+xml")

	for i := range 30 {
		ann.send(fmt.Sprint("filler ", i))
	}
	bob.waitMessage("ann", "filler 29")
	bob.do("scrolling up", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`document.getElementById("log").scrollTop = 0`)(ctx, t)
		return err
	}))
	testEq(t, eval[bool](bob, "no hint yet", `document.getElementById("new-messages").hidden`), true)
	ann.send("while scrolled up")
	bob.waitMessage("ann", "while scrolled up")
	testEq(t, eval[bool](bob, "the hint", `!document.getElementById("new-messages").hidden`), true)
	testEq(t, eval[float64](bob, "still scrolled up", `document.getElementById("log").scrollTop`), 0)

	// Sending scrolls one's own message into view.
	bob.send("mine")
	bob.waitSent("mine")
	testEq(t, eval[bool](bob, "own message in view", `(() => {
		const log = document.getElementById("log").getBoundingClientRect();
		const r = [...document.querySelectorAll("#log li.mine")].at(-1).getBoundingClientRect();
		return r.top >= log.top && r.bottom <= log.bottom + 1;
	})()`), true)
}

func testEq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}
