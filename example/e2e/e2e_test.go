package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/wsroute"
)

// demoBin is the demo server, built once by TestMain.
var demoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nexio-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBin = filepath.Join(dir, "nexio-demo")
	build := exec.Command("go", "build", "-o", demoBin, "./example")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the demo server:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// Every browser, tab and server process is stopped by the
		// tests' cleanups: nothing of theirs may be left running.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server is one running demo process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:port
	logs   *lockedBuffer
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sb.WriteString(line + "\n")
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// startServer runs the demo with args on a free loopback port.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(demoBin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		addrRE := regexp.MustCompile(`msg="nexio demo listening" addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.logs.add(sc.Text())
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs)
		}
	})
	select {
	case addr := <-addrCh:
		s.url = "http://" + addr
	case <-time.After(15 * time.Second):
		t.Fatalf("the demo server did not start; log:\n%s", s.logs)
	}
	return s
}

// stop sends SIGTERM and checks the process exits 0 within five seconds.
func (s *server) stop() {
	s.t.Helper()
	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			s.t.Fatalf("the server exited with %v after SIGTERM", err)
		}
	case <-time.After(5 * time.Second):
		s.t.Fatalf("the server still runs 5 s after SIGTERM")
	}
	s.t.Logf("server stopped %v after SIGTERM", time.Since(began).Round(time.Millisecond))
}

// chromium finds the browser: Debian's package, never a download.
func chromium(t *testing.T) string {
	for _, p := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile. Each
// context returned by newPage is one tab of it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser; it lives as long as bctx.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// page is one tab showing the chat page.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

func newPage(t *testing.T, browser context.Context, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first Run on a context opens its tab, which lives as long as
	// the context of that call: run it on ctx itself, not on one of the
	// timed contexts of do.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return &page{t: t, name: name, ctx: ctx}
}

// do runs steps with a time limit.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		dctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		state, _ := chromedp.Run(dctx, chromedp.Evaluate[string](
			`"status: " + document.getElementById("status").innerText + "\nlog:\n" + document.getElementById("log").innerText`))
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, state)
	}
}

// waitFor polls a JavaScript expression until it is truthy.
func (p *page) waitFor(what, expr string) {
	p.t.Helper()
	p.do("waiting for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(15*time.Second))(ctx, t)
		return err
	}))
}

// join opens the chat page at base and joins room as p.name.
func (p *page) join(base, room string) {
	p.t.Helper()
	p.do("joining",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#join")),
		chromedp.SetValue(chromedp.CSS("#name"), p.name),
		chromedp.SetValue(chromedp.CSS("#room"), room),
		chromedp.Click(chromedp.CSS("#join")),
	)
	p.waitFor("the connection", `document.getElementById("status").dataset.state === "open"`)
}

func (p *page) send(text string) {
	p.t.Helper()
	p.do("sending",
		chromedp.SetValue(chromedp.CSS("#message"), text),
		chromedp.Click(chromedp.CSS("#send")),
	)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	return fmt.Sprintf("%q", s)
}

func (p *page) waitMessage(from, text string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%q from %s", text, from), fmt.Sprintf(
		`[...document.querySelectorAll("#log li.msg")].some(li => li.querySelector(".who")?.textContent === %s && li.textContent.endsWith(%s))`,
		js(from+":"), js(text)))
}

func (p *page) waitPresence(name string) {
	p.t.Helper()
	p.waitFor(name+" in the presence list", fmt.Sprintf(
		`[...document.querySelectorAll("#presence .member")].some(e => e.textContent === %s)`, js(name)))
}

func (p *page) waitClosed(code wsroute.StatusCode) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("close %d in the log", code), fmt.Sprintf(
		`document.querySelector('#log li[data-close-code="%d"]') !== null`, code))
}

func (p *page) screenshot(path string) {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of %s's page: %s", p.name, path)
}

// chat is the scenario: ann (on annURL) and bob (on bobURL) join one
// room, see each other in the presence list, exchange messages, and see
// the connection close with 1001 when stop stops the server(s).
func chat(t *testing.T, annURL, bobURL string, stop func(), shot string) {
	browser := newBrowser(t)
	ann := newPage(t, browser, "ann")
	bob := newPage(t, browser, "bob")
	room := fmt.Sprintf("e2e-%d", time.Now().UnixNano())

	ann.join(annURL, room)
	bob.join(bobURL, room)
	ann.waitPresence("bob")
	bob.waitPresence("ann")

	bob.send("hello ann, it is bob")
	ann.waitMessage("bob", "hello ann, it is bob")
	ann.send("hi bob! <b>not bold</b>")
	bob.waitMessage("ann", "hi bob! <b>not bold</b>")
	// Text is shown as text, never as HTML.
	bob.waitFor("escaped text", `document.querySelector("#log b") === null`)

	if shot != "" {
		ann.screenshot(shot)
	}

	stop()
	ann.waitClosed(wsroute.StatusGoingAway)
	bob.waitClosed(wsroute.StatusGoingAway)
	// In words, not as a code.
	ann.waitFor("the restart wording", `document.querySelector('#log li[data-close-code="1001"]').textContent.includes("Server restarting — reconnecting")`)
	if shot != "" {
		bob.screenshot(strings.TrimSuffix(shot, ".png") + "-closed.png")
	}
	// And the pages try again, with backoff.
	ann.waitFor("a reconnect attempt", `/reconnecting/i.test(document.getElementById("status").textContent)`)
}

func TestChatOnOneServer(t *testing.T) {
	srv := startServer(t)
	chat(t, srv.url, srv.url, srv.stop, filepath.Join(os.TempDir(), "nexio-e2e-chat.png"))
}

// TestChatAcrossInstances runs two servers on one Redis: ann's page talks
// to one, bob's to the other.
func TestChatAcrossInstances(t *testing.T) {
	const redisAddr = "127.0.0.1:6379"
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		if os.Getenv("NEXIO_REQUIRE_REDIS") == "1" {
			t.Fatalf("Redis is required (NEXIO_REQUIRE_REDIS=1) but %s does not answer: %v", redisAddr, err)
		}
		t.Skipf("no Redis on %s: %v", redisAddr, err)
	} else {
		c.Close()
	}
	one := startServer(t, "-redis", "redis://"+redisAddr+"/0")
	two := startServer(t, "-redis", "redis://"+redisAddr+"/0")
	if strings.Contains(one.logs.String(), "keeps no history") {
		// That broker predates presence events too: the page, which
		// follows them, would not see the other instance's members.
		t.Skip("this redisbroker keeps no history and sends no presence events")
	}
	chat(t, one.url, two.url, func() {
		var wg sync.WaitGroup
		for _, s := range []*server{one, two} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.stop()
			}()
		}
		wg.Wait()
	}, filepath.Join(os.TempDir(), "nexio-e2e-chat-redis.png"))
}

// TestUnauthorizedIsShown uses the page's auth demo: a wrong token shows
// close 4001 Unauthorized, the right one an echo.
func TestUnauthorizedIsShown(t *testing.T) {
	srv := startServer(t)
	p := newPage(t, newBrowser(t), "auth")
	p.do("opening the auth demo",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#auth-demo summary")),
		chromedp.Click(chromedp.CSS("#auth-demo summary")),
		chromedp.SetValue(chromedp.CSS("#token"), "wrong"),
		chromedp.Click(chromedp.CSS("#auth-send")),
	)
	p.waitFor("close 4001", `[...document.querySelectorAll('#auth-log li[data-close-code="4001"]')].some(li => li.dataset.closeReason === "Unauthorized")`)
	p.do("sending with the right token",
		chromedp.SetValue(chromedp.CSS("#token"), "valid_token"),
		chromedp.Click(chromedp.CSS("#auth-send")),
	)
	p.waitFor("the echo", `[...document.querySelectorAll("#auth-log li")].some(li => li.textContent.endsWith("Echo: hello"))`)
	srv.stop()
}
