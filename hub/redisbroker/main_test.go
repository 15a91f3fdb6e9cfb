package redisbroker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		// go-redis logs every failed dial through its own global logger;
		// the restart tests cause many on purpose.
		redis.SetLogger(quietLogger{})
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Tiny assertion helpers: tests read as plain Go.

// eventually polls cond until it holds or ten seconds pass.
// Real Redis. Tests use NEXIO_REDIS_URL (default below); when it does
// not answer they skip, unless NEXIO_REQUIRE_REDIS=1 (CI), where they
// fail.

const defaultRedisURL = "redis://127.0.0.1:6379/0"

func redisRequired() bool { return os.Getenv("NEXIO_REQUIRE_REDIS") == "1" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if redisRequired() {
		t.Fatalf("%s (NEXIO_REQUIRE_REDIS=1)", msg)
	}
	t.Skip(msg)
}

// redisOptions parses NEXIO_REDIS_URL and checks, once per run, that
// Redis answers.
func redisOptions(t testing.TB) *redis.Options {
	t.Helper()
	url := os.Getenv("NEXIO_REDIS_URL")
	if url == "" {
		url = defaultRedisURL
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("NEXIO_REDIS_URL=%q: %v", url, err)
	}
	if err := redisReachable(opt); err != nil {
		skipOrFail(t, "Redis is not reachable at %s: %v. Start one with `redis-server` "+
			"(or `docker run --rm -p 6379:6379 redis:7`), or point NEXIO_REDIS_URL at one", url, err)
	}
	return opt
}

var (
	pingOnce sync.Once
	pingErr  error
)

func redisReachable(opt *redis.Options) error {
	pingOnce.Do(func() {
		o := *opt
		o.DialerRetries = 1
		o.MaxRetries = -1
		c := redis.NewClient(&o)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		pingErr = c.Ping(ctx).Err()
	})
	return pingErr
}

// newClient returns a client of the test Redis, closed at cleanup.
func newClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(redisOptions(t))
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a channel and key prefix of its own for a test, so
// that parallel tests (and runs) never hear one another. Its keys are
// deleted at cleanup.
func testPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	prefix := "nexio-test-" + name + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var keys []string
		iter := c.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for _, k := range keys {
			c.Del(ctx, k)
		}
	})
	return prefix
}

// numSub returns how many clients are subscribed to a broker channel.
func numSub(ctx context.Context, c redis.UniversalClient, prefix, kind, name string) int64 {
	ch := "{" + prefix + "}:" + kind + ":" + name
	n, err := c.PubSubNumSub(ctx, ch).Result()
	if err != nil {
		return -1
	}
	return n[ch]
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	var b logBuffer
	var w io.Writer = &b
	if testing.Verbose() {
		w = io.MultiWriter(&b, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// redisServer is a private redis-server on a free port, for tests that
// kill and restart Redis.
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	args []string
	cmd  *exec.Cmd
}

func redisServerBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("NEXIO_REDIS_SERVER"), "/usr/bin/redis-server"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	skipOrFail(t, "redis-server binary not found (looked at $NEXIO_REDIS_SERVER, /usr/bin/redis-server and $PATH); "+
		"install it (apt-get install redis-server) to run the restart tests")
	return ""
}

// startRedis starts a redis-server without persistence, stopped at
// cleanup. extra are more command-line options.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	s := &redisServer{t: t, bin: redisServerBinary(t), port: testutil.FreePort(t)}
	s.args = append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", t.TempDir(), "--loglevel", "warning",
	}, extra...)
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	testutil.NoErr(s.t, s.cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not start: %v", s.addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the server at once (SIGKILL): no goodbye to its clients.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// proxy forwards TCP connections to a target until cut, which drops
// every connection and refuses new ones: to a client behind it, Redis
// has vanished. It stands for a node killed or cut off from Redis.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cutOff bool
	down   bool // block: connections are dropped and refused until unblock
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, u) {
			return
		}
		p.mu.Lock()
		refused := p.down
		p.mu.Unlock()
		if refused {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutOff || p.down {
		for _, c := range cs {
			c.Close()
		}
		return !p.cutOff
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// block drops every connection and refuses new ones until unblock: a
// node cut off from Redis for a while.
func (p *proxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// cut closes the listener and every connection, and waits for the
// proxy's goroutines.
func (p *proxy) cut() {
	p.mu.Lock()
	p.cutOff = true
	p.l.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
