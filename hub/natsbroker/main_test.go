package natsbroker_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/nexio-go/nexio/internal/testutil"
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Real NATS. Tests use NEXIO_NATS_URL (default below); when it does not
// answer they skip, unless NEXIO_REQUIRE_NATS=1 (CI), where they fail.
const defaultNATSURL = "nats://127.0.0.1:4222"

func natsURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("NEXIO_NATS_URL")
	if url == "" {
		url = defaultNATSURL
	}
	if err := natsReachable(url); err != nil {
		msg := fmt.Sprintf("NATS with JetStream is not reachable at %s: %v. Start one with `nats-server -js` "+
			"(or `docker run --rm -p 4222:4222 nats -js`), or point NEXIO_NATS_URL at one", url, err)
		if os.Getenv("NEXIO_REQUIRE_NATS") == "1" {
			t.Fatalf("%s (NEXIO_REQUIRE_NATS=1)", msg)
		}
		t.Skip(msg)
	}
	return url
}

var (
	pingOnce sync.Once
	pingErr  error
)

func natsReachable(url string) error {
	pingOnce.Do(func() {
		nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
		if err != nil {
			pingErr = err
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, pingErr = js.AccountInfo(ctx)
	})
	return pingErr
}

// connect returns a connection to url, closed at cleanup, that retries
// quickly: the tests cut and restore servers on purpose.
func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(time.Second),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	testutil.NoErr(t, err)
	t.Cleanup(nc.Close)
	return nc
}

var prefixes sync.Map // test name -> prefix, so that every broker of a test shares one

// testPrefix returns the subject, stream and bucket prefix of a test:
// the same for every call with the same test, different across tests
// and runs. What the brokers created on the shared server is deleted at
// cleanup.
func testPrefix(t testing.TB, url string) string {
	t.Helper()
	if p, ok := prefixes.Load(t.Name()); ok {
		return p.(string)
	}
	sum := sha256.Sum256([]byte(t.Name()))
	var r [4]byte
	rand.Read(r[:])
	prefix := "t" + hex.EncodeToString(sum[:5]) + hex.EncodeToString(r[:])
	if p, loaded := prefixes.LoadOrStore(t.Name(), prefix); loaded {
		return p.(string)
	}
	t.Cleanup(func() {
		prefixes.Delete(t.Name())
		nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		js.DeleteStream(ctx, prefix+"_history")
		js.DeleteKeyValue(ctx, prefix+"_presence")
		js.DeleteKeyValue(ctx, prefix+"_nodes")
	})
	return prefix
}

// testLogger returns a logger writing into a buffer (and to the test's
// output with -v).
func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	var buf logBuffer
	var w io.Writer = &buf
	if testing.Verbose() {
		w = io.MultiWriter(&buf, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

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

// natsServer is a private nats-server with JetStream, for tests that
// stop it or need a cluster. Its store is in a t.TempDir().
type natsServer struct {
	t     testing.TB
	name  string
	port  int
	dir   string
	extra []string
	mu    sync.Mutex
	cmd   *exec.Cmd
	log   *os.File
}

func natsServerBin(t testing.TB) string {
	if p := os.Getenv("NEXIO_NATS_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	msg := "nats-server is not installed (apt-get install nats-server, or set NEXIO_NATS_SERVER)"
	if os.Getenv("NEXIO_REQUIRE_NATS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func newNATSServer(t testing.TB, name string, extra ...string) *natsServer {
	natsServerBin(t)
	s := &natsServer{t: t, name: name, port: testutil.FreePort(t), dir: t.TempDir(), extra: extra}
	t.Cleanup(s.kill)
	return s
}

func startNATS(t testing.TB) *natsServer {
	s := newNATSServer(t, "solo")
	s.start()
	return s
}

func (s *natsServer) url() string  { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }
func (s *natsServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *natsServer) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir + "/store", "-n", s.name}, s.extra...)
	cmd := exec.Command(natsServerBin(s.t), args...)
	logf, err := os.OpenFile(s.dir+"/server.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	testutil.NoErr(s.t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	testutil.NoErr(s.t, cmd.Start())
	s.cmd, s.log = cmd, logf
	testutil.Eventually(s.t, func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "nats-server %s did not listen on %s", s.name, s.addr())
}

// kill stops the server with SIGKILL: no goodbye to its clients.
func (s *natsServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.log.Close()
	s.cmd = nil
}

// wipe deletes the server's store (while it is stopped).
func (s *natsServer) wipe() {
	testutil.NoErr(s.t, os.RemoveAll(s.dir+"/store"))
}

func contextBackground() context.Context { return context.Background() }
