package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/redis/go-redis/v9"
)

// The Redis variant needs a Redis it may kill: a private redis-server on
// a free port, started by the test. Without the binary it falls back to
// the shared Redis of NEXIO_REDIS_URL (no restart then), and without
// either it skips, unless NEXIO_REQUIRE_REDIS=1.

func redisRequired() bool { return os.Getenv("NEXIO_REQUIRE_REDIS") == "1" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if redisRequired() {
		t.Fatalf("%s (NEXIO_REQUIRE_REDIS=1)", msg)
	}
	t.Skip(msg)
}

// sharedRedis returns the options of NEXIO_REDIS_URL (default
// redis://127.0.0.1:6379/0) if it answers.
func sharedRedis() (*redis.Options, error) {
	url := os.Getenv("NEXIO_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("NEXIO_REDIS_URL=%q: %w", url, err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("Redis at %s does not answer: %w", url, err)
	}
	return opt, nil
}

// redisServer is a private redis-server without persistence.
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func redisServerBinary() string {
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
	return ""
}

// startRedis starts a private redis-server, killed at cleanup; nil if
// there is no redis-server binary.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin := redisServerBinary()
	if bin == "" {
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", s.dir, "--loglevel", "warning")
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

// kill stops the server with SIGKILL: its clients get no goodbye.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}
