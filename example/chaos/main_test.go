package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

var (
	chaosDuration = flag.Duration("chaos.duration", 3*time.Second,
		"how long each TestChaos variant injects faults (the short default keeps `make test` fast)")
	chaosLoad = flag.Bool("chaos.load", false,
		"run TestLoad: 10,000 connections, memory per connection and broadcast latency")
	loadConns = flag.Int("chaos.conns", 10000,
		"TestLoad: connections held open (half in rooms)")
	loadTime = flag.Duration("chaos.loadtime", 10*time.Second,
		"TestLoad: how long broadcasts run while every connection is open")
	halfOpen = flag.Int("chaos.halfopen", 1000,
		"TestSlowloris: half-open handshakes held at once")
	//lint:ignore U1000 no bug is open; skipKnownBug reads it for the next one found
	knownBugs = flag.Bool("chaos.knownbugs", false,
		"run the TestBug* tests, which fail until the bugs they show are fixed (none is open)")
	headerTimeout = flag.Duration("chaos.readheader", 2*time.Second,
		"http.Server.ReadHeaderTimeout of the servers under test (the demo uses 10s)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	raiseFileLimit()
	// go-redis logs every failed dial through its global logger; the
	// Redis restart causes many on purpose. The broker's own log says
	// what matters.
	redis.SetLogger(quietRedis{})
	if spec := os.Getenv(loadChildEnv); spec != "" {
		// The client side of TestLoad, in its own process.
		os.Exit(runLoadChild(spec))
	}
	goleak.VerifyTestMain(m)
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// raiseFileLimit lifts the soft limit on open files to the hard one: the
// storms, the half-open clients and TestLoad hold thousands of sockets,
// each of which costs a descriptor on both sides of loopback.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// Tiny assertion helpers: tests read as plain Go.

// eventually polls cond until it holds or d passes.
// mib formats a byte count.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
