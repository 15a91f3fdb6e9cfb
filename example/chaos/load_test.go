package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// TestLoad holds -chaos.conns connections (10,000 by default) to the
// demo stack, half of them idle on /ws/echo and half in rooms (10 rooms
// of 500, every member also in the room "all"), and measures the
// server's memory per connection and the latency of broadcasts while
// all are connected.
//
// One process cannot hold both ends of 10,000 connections (the hard
// limit on open files here is 20,000), so the clients live in a child
// process: this test binary again, started with loadChildEnv set, which
// TestMain hands to runLoadChild. The parent's figures are the server's
// alone. Not run under the race detector (its limit is 8,128
// goroutines).
//
//	go test -v -run TestLoad ./example/chaos/ -chaos.load
func TestLoad(t *testing.T) {
	if !*chaosLoad {
		t.Skip("run with -chaos.load: 10,000 connections, memory per connection and broadcast latency")
	}
	if raceEnabled {
		t.Skip("not under the race detector: it allows 8,128 goroutines")
	}
	n := *loadConns
	inRooms, rooms := n/2, 10
	base := measure()
	samp := startSampler(time.Second)
	// Measured after the stack's own cleanup, when it is garbage.
	t.Cleanup(func() {
		peak := samp.Stop()
		final := settle(t, base, 1<<20+gSlack(peak), 30*time.Second)
		t.Logf("after shutdown: %v (peak %v)", final, peak)
	})
	s := newStack(t, stackConfig{rate: 1e6, burst: 1e6, maxTotal: 2 * n, maxPerIP: n, logLevel: slog.LevelWarn})
	child := startLoadChild(t, s.addr)

	tookEcho := child.do(t, "echo %d", n-inRooms)
	testutil.EventuallyWithin(t, 30*time.Second, func() bool { return s.tracker.Len() == n-inRooms }, "echo clients did not all connect")
	afterEcho := measure()
	tookRooms := child.do(t, "rooms %d %d", inRooms, rooms)
	testutil.EventuallyWithin(t, 30*time.Second, func() bool { return s.tracker.Len() == n && s.hub.Count("all") == inRooms },
		"room members did not all connect: %d open, %d in all", s.tracker.Len(), s.hub.Count("all"))
	afterAll := measure()
	ctx := testutil.Context(t, time.Minute)
	pad := strings.Repeat("x", 100)
	drain := func() {
		testutil.EventuallyWithin(t, 30*time.Second, func() bool {
			a := s.hub.Stats().MessagesOut
			time.Sleep(200 * time.Millisecond)
			return s.hub.Stats().MessagesOut == a
		}, "the hub did not drain")
	}

	// Phase 1, fan-out on a quiet server: one broadcast to all 5,000
	// members every 500 ms. The latency of each message is how long the
	// fan-out took to reach that member; what the caller of Broadcast
	// pays is timed too.
	var call latencies
	for range 20 {
		t0 := time.Now()
		s.hub.BroadcastText(ctx, "all", stamp("fan", pad))
		call.add(time.Since(t0))
		time.Sleep(500 * time.Millisecond)
	}
	drain()

	// Phase 2, busy: every 100 ms to each of the 10 rooms (500 members
	// each), every 500 ms to "all" too.
	st0 := s.hub.Stats()
	cpu0 := cpuTime()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	var toRooms, toAll int
	for i := 0; time.Since(start) < *loadTime; i++ {
		<-tick.C
		for r := range rooms {
			s.hub.BroadcastText(ctx, fmt.Sprintf("r%d", r), stamp("room", pad))
			toRooms++
		}
		if i%5 == 0 {
			s.hub.BroadcastText(ctx, "all", stamp("all", pad))
			toAll++
		}
	}
	tick.Stop()
	drain()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	st1 := s.hub.Stats()
	during := measure()
	var lat map[string]percentiles
	testutil.NoErr(t, json.Unmarshal([]byte(child.ask(t, "report")), &lat))

	// Everyone leaves; the server stays up: what does it keep?
	child.close(t)
	testutil.EventuallyWithin(t, 30*time.Second, func() bool { return s.tracker.Len() == 0 && s.hub.Count("all") == 0 }, "clients did not all leave")
	var left usage
	testutil.EventuallyWithin(t, 30*time.Second, func() bool {
		left = measure()
		return left.goroutines <= base.goroutines+2 // Serve, the sampler
	}, "handlers did not all return: %v", left)

	delivered := st1.MessagesOut - st0.MessagesOut
	per := func(a, b usage, k int) string {
		return fmt.Sprintf("%.1f KiB RSS, %.1f KiB heap, %.2f goroutines, %.2f fds",
			float64(a.rss-b.rss)/float64(k)/1024, float64(a.heap-b.heap)/float64(k)/1024,
			float64(a.goroutines-b.goroutines)/float64(k), float64(a.fds-b.fds)/float64(k))
	}
	t.Logf("\nload: %d connections from a child process (%d idle on /ws/echo, %d in %d rooms + \"all\"), %d-byte messages\n"+
		"  connected: echo clients in %v, room members in %v\n"+
		"  server memory per connection (process totals after GC, minus the baseline):\n"+
		"    idle echo client:  %s\n    room member:       %s\n    all, averaged:     %s\n"+
		"  quiet fan-out, 20 broadcasts to all %d members:\n    Broadcast call: %s\n    delivery:       %s\n"+
		"  busy, %v: %d broadcasts to rooms of %d, %d to all %d; %d messages delivered (%.0f/s)\n"+
		"    server CPU %.2f s: %.2f µs per delivered message; slow disconnects %d, dropped %d\n"+
		"    delivery to rooms of %d: %s\n    delivery to all %d:      %s\n"+
		"resources: base   %v\n           echo   %v\n           all    %v\n           busy   %v\n           left   %v (everyone gone, server up)",
		n, n-inRooms, inRooms, rooms, len(stamp("room", pad)), tookEcho.Round(time.Millisecond), tookRooms.Round(time.Millisecond),
		per(afterEcho, base, n-inRooms), per(afterAll, afterEcho, inRooms), per(afterAll, base, n),
		inRooms, call.String(), lat["fan"].String(),
		elapsed.Round(time.Millisecond), toRooms, inRooms/rooms, toAll, inRooms, delivered, float64(delivered)/elapsed.Seconds(),
		cpu.Seconds(), float64(cpu.Microseconds())/float64(delivered), st1.SlowDisconnects-st0.SlowDisconnects, st1.Dropped-st0.Dropped,
		inRooms/rooms, lat["room"].String(), inRooms, lat["all"].String(),
		base, afterEcho, afterAll, during, left)
	testutil.Check(t, st1.SlowDisconnects == 0 && st1.Dropped == 0, "members were lost under load")
	testutil.Check(t, lat["fan"].N == 20*inRooms, "the clients got %d fan-out messages, want %d", lat["fan"].N, 20*inRooms)
	testutil.Check(t, lat["room"].N+lat["all"].N == int(delivered), "the clients got %d messages, the hub delivered %d", lat["room"].N+lat["all"].N, delivered)
}

// stamp makes a broadcast that says when it was sent.
func stamp(kind, pad string) string {
	return "t|" + kind + "|" + strconv.FormatInt(time.Now().UnixNano(), 10) + "|" + pad
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type percentiles struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

func (p percentiles) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d messages, p50 %v, p90 %v, p99 %v, p99.9 %v, max %v", p.N, r(p.P50), r(p.P90), r(p.P99), r(p.P999), r(p.Max))
}

// loadChild is the parent's handle on the client process. Commands go
// to its stdin, one per line; it answers each with one line.
type loadChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

const loadChildEnv = "NEXIO_CHAOS_LOAD_CHILD"

func startLoadChild(t *testing.T, addr string) *loadChild {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadChildEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	testutil.NoErr(t, err)
	stdout, err := cmd.StdoutPipe()
	testutil.NoErr(t, err)
	cmd.Stderr = os.Stderr
	testutil.NoErr(t, cmd.Start())
	c := &loadChild{cmd: cmd, stdin: stdin, lines: make(chan string, 1)}
	// The reader ends when the child exits and its stdout closes.
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { c.close(t) })
	return c
}

// ask sends a command and returns the answer.
func (c *loadChild) ask(t *testing.T, format string, args ...any) string {
	t.Helper()
	fmt.Fprintf(c.stdin, format+"\n", args...)
	select {
	case line, ok := <-c.lines:
		if !ok {
			t.Fatal("the client process exited")
		}
		if msg, bad := strings.CutPrefix(line, "error "); bad {
			t.Fatalf("client process: %s", msg)
		}
		return line
	case <-time.After(2 * time.Minute):
		t.Fatal("the client process did not answer")
	}
	return ""
}

// do runs a connect command and returns how long it took.
func (c *loadChild) do(t *testing.T, format string, args ...any) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.TrimPrefix(c.ask(t, format, args...), "ok "))
	testutil.NoErr(t, err)
	return d
}

func (c *loadChild) close(t *testing.T) {
	if c.stdin == nil {
		return
	}
	c.stdin.Close()
	c.stdin = nil
	for range c.lines {
	}
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("client process: %v", err)
	}
}

// runLoadChild is the client process of TestLoad. Commands on stdin:
//
//	echo N        connect N clients to /ws/echo, each checks one echo
//	rooms N R     connect N members to /ws/rooms/r<i%R>?also=all
//	report        the latencies of the stamped broadcasts received
//
// EOF closes every connection and exits.
func runLoadChild(addr string) int {
	lc := &loadClients{addr: addr, samples: make(map[string]*samples)}
	out := bufio.NewWriter(os.Stdout)
	answer := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		atoi := func(i int) int {
			if i >= len(f) {
				return 0
			}
			n, _ := strconv.Atoi(f[i])
			return n
		}
		switch f[0] {
		case "echo":
			d, err := lc.connect(atoi(1), func(int) string { return "/ws/echo" }, true)
			if err != nil {
				answer("error %v", err)
				continue
			}
			answer("ok %v", d)
		case "rooms":
			r := atoi(2)
			d, err := lc.connect(atoi(1), func(i int) string { return fmt.Sprintf("/ws/rooms/r%d?also=all", i%r) }, false)
			if err != nil {
				answer("error %v", err)
				continue
			}
			answer("ok %v", d)
		case "report":
			lc.mu.Lock()
			rep := make(map[string]percentiles, len(lc.samples))
			for kind, s := range lc.samples {
				rep[kind] = s.percentiles()
			}
			lc.mu.Unlock()
			b, _ := json.Marshal(rep)
			answer("%s", b)
		default:
			answer("error unknown command %q", f[0])
		}
	}
	lc.closeAll()
	return 0
}

// loadClients are the child's connections: raw clients, one reading
// goroutine each, which answers pings and times stamped messages.
type loadClients struct {
	addr string
	next atomic.Int64 // source address index
	wg   sync.WaitGroup

	mu      sync.Mutex
	conns   []*rawConn
	samples map[string]*samples // by kind of stamped message
}

func (lc *loadClients) connect(n int, path func(int) string, echo bool) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	const workers = 32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := lc.open(path(i), echo); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return time.Since(start), nil
}

func (lc *loadClients) open(path string, echo bool) error {
	i := int(lc.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := rawHandshake(ctx, lc.addr, srcIP(groupLoad, i%200), handshake{path: path}, 0)
	if err != nil {
		return err
	}
	if resp.StatusCode != 101 {
		c.Close()
		return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	if echo {
		c.Write(frame(true, 0, opText, []byte("hi"), false))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _, p, err := readFrame(c.br, 1<<10)
		c.SetReadDeadline(time.Time{})
		if err != nil || string(p) != "Echo: hi" {
			c.Close()
			return fmt.Errorf("echo: %q %v", p, err)
		}
	}
	lc.mu.Lock()
	lc.conns = append(lc.conns, c)
	lc.mu.Unlock()
	lc.wg.Add(1)
	go lc.read(c)
	return nil
}

// read is a connection's reader; it ends with the connection.
func (lc *loadClients) read(c *rawConn) {
	defer lc.wg.Done()
	for {
		_, op, p, err := readFrame(c.br, 1<<20)
		if err != nil {
			return
		}
		switch op {
		case opPing:
			c.Write(frame(true, 0, opPong, p, false))
		case opClose:
			c.Write(closeFrame(1000, ""))
			return
		case opText:
			now := time.Now().UnixNano()
			f := strings.SplitN(string(p), "|", 4)
			if len(f) < 3 || f[0] != "t" {
				continue
			}
			sent, _ := strconv.ParseInt(f[2], 10, 64)
			lc.mu.Lock()
			s := lc.samples[f[1]]
			if s == nil {
				s = new(samples)
				lc.samples[f[1]] = s
			}
			lc.mu.Unlock()
			s.add(now - sent)
		}
	}
}

func (lc *loadClients) closeAll() {
	lc.mu.Lock()
	for _, c := range lc.conns {
		c.Close()
	}
	lc.mu.Unlock()
	lc.wg.Wait()
}

// samples are latencies in nanoseconds.
type samples struct {
	mu sync.Mutex
	ns []int64
}

func (s *samples) add(ns int64) {
	s.mu.Lock()
	s.ns = append(s.ns, ns)
	s.mu.Unlock()
}

func (s *samples) percentiles() percentiles {
	s.mu.Lock()
	ns := slices.Clone(s.ns)
	s.mu.Unlock()
	if len(ns) == 0 {
		return percentiles{}
	}
	slices.Sort(ns)
	q := func(f float64) time.Duration { return time.Duration(ns[min(len(ns)-1, int(f*float64(len(ns))))]) }
	return percentiles{N: len(ns), P50: q(0.5), P90: q(0.9), P99: q(0.99), P999: q(0.999), Max: time.Duration(ns[len(ns)-1])}
}
