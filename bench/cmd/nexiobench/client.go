package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clientConfig is one run of one workload against one server.
type clientConfig struct {
	workload string
	addr     string
	impl     string // label only: the server says which it is
	pass     int
	clients  int
	window   int
	msgs     int // upper bound on messages (fanout) or round trips per client (echo) or handshakes
	size     int
	duration time.Duration // upper bound on the measuring phase
	conc     int           // concurrent dialers (setup) / handshake workers
	settle   time.Duration // idle: wait before reading memory
	timeout  time.Duration // the whole run, setup included: the process exits when it passes
}

func clientMain(args []string) error {
	var cfg clientConfig
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	fs.StringVar(&cfg.workload, "workload", "", "echo | fanout | idle | handshakes")
	fs.StringVar(&cfg.addr, "addr", "", "server address (loopback)")
	fs.StringVar(&cfg.impl, "impl", "", "implementation label for the result line")
	fs.IntVar(&cfg.pass, "pass", 1, "pass number for the result line")
	fs.IntVar(&cfg.clients, "clients", 0, "connections (default: echo 50, fanout 1000, idle 5000, handshakes 16 workers)")
	fs.IntVar(&cfg.window, "window", 32, "fanout: broadcasts in flight")
	fs.IntVar(&cfg.msgs, "msgs", 0, "upper bound on messages / round trips per client / handshakes (default per workload)")
	fs.IntVar(&cfg.size, "size", 0, "message size in bytes (default: echo 64, fanout 128)")
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "upper bound on the measured phase")
	fs.IntVar(&cfg.conc, "conc", 64, "concurrent dials while setting up")
	fs.DurationVar(&cfg.settle, "settle", time.Second, "idle: wait after the last join before reading memory")
	fs.DurationVar(&cfg.timeout, "timeout", 90*time.Second, "hard limit for the whole run")
	_ = fs.Parse(args)
	if err := requireLoopback(cfg.addr); err != nil {
		return err
	}
	cfg.setDefaults()
	raiseFileLimit()

	// Watchdog: whatever hangs, the process reports and exits on time.
	time.AfterFunc(cfg.timeout, func() {
		fmt.Println(failLine(cfg, fmt.Errorf("run exceeded -timeout %v", cfg.timeout)))
		os.Exit(1)
	})

	var (
		kv  []string
		err error
	)
	switch cfg.workload {
	case "echo":
		kv, err = runEcho(cfg)
	case "fanout":
		kv, err = runFanout(cfg)
	case "idle":
		kv, err = runIdle(cfg)
	case "handshakes":
		kv, err = runHandshakes(cfg)
	default:
		return fmt.Errorf("unknown -workload %q", cfg.workload)
	}
	if err != nil {
		fmt.Println(failLine(cfg, err))
		return err
	}
	fmt.Println(strings.Join(append(append(headKV(cfg), kv...), "pass="+itoa(cfg.pass), "ok=1"), " "))
	return nil
}

// setDefaults fills the per-workload defaults the flags leave at zero.
func (cfg *clientConfig) setDefaults() {
	type def struct{ clients, msgs, size int }
	d := map[string]def{
		"echo":       {50, 1_000_000, 64}, // msgs: round trips per client
		"fanout":     {1000, 100_000, 128},
		"idle":       {5000, 0, 0},
		"handshakes": {16, 200_000, 0}, // clients: concurrent workers
	}[cfg.workload]
	if cfg.clients == 0 {
		cfg.clients = d.clients
	}
	if cfg.msgs == 0 {
		cfg.msgs = d.msgs
	}
	if cfg.size == 0 {
		cfg.size = d.size
	}
	if cfg.window < 1 {
		cfg.window = 1
	}
}

// headKV starts every result line: what ran, against what.
func headKV(cfg clientConfig) []string {
	kv := []string{"impl=" + cfg.impl, "workload=" + cfg.workload, "clients=" + itoa(cfg.clients)}
	if cfg.workload == "fanout" {
		kv = append(kv, "window="+itoa(cfg.window))
	}
	return kv
}

func failLine(cfg clientConfig, err error) string {
	msg := strings.Join(strings.Fields(err.Error()), "_")
	return strings.Join(append(headKV(cfg), "pass="+itoa(cfg.pass), "ok=0", "err="+msg), " ")
}

// ---- helpers shared by the workloads ----

var statsClient = &http.Client{Timeout: 10 * time.Second}

func fetchStats(addr string, gc bool) (serverStats, error) {
	var st serverStats
	u := "http://" + addr + "/stats"
	if gc {
		u += "?gc=1"
	}
	resp, err := statsClient.Get(u)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// waitMembers polls /stats until the room has n members: some servers join
// a member after the handshake has completed (through a hub goroutine), and
// a broadcast must not start before everyone is in.
func waitMembers(addr string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := -1
	for time.Now().Before(deadline) {
		st, err := fetchStats(addr, false)
		if err != nil {
			return err
		}
		if st.Members == n {
			return nil
		}
		last = st.Members
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("room has %d members after %v, want %d", last, timeout, n)
}

// connectMany opens n connections to path with at most conc dials in flight
// (thousands of simultaneous SYNs would overflow the listen backlog and cost
// seconds of SYN retransmits).
func connectMany(addr, path string, n, conc int) ([]*wsConn, error) {
	return dialMany(n, conc, func() (*wsConn, error) { return dialWS(addr, path, 15*time.Second) })
}

// joinMany is connectMany for members of the room, joined as impl's
// clients join it.
func joinMany(impl, addr string, n, conc int) ([]member, error) {
	return dialMany(n, conc, func() (member, error) { return joinRoom(impl, "", addr, 4096) })
}

// dialMany calls dial n times, at most conc at once. The dialing
// goroutines end before it returns; on error every connection is closed.
func dialMany[C interface{ closeNow() }](n, conc int, dial func() (C, error)) ([]C, error) {
	conns := make([]C, n)
	dialed := make([]bool, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	if conc > n {
		conc = n
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dial()
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d of %d: %w", i+1, n, err) })
					next.Store(int64(n)) // stop the other dialers
					return
				}
				conns[i], dialed[i] = c, true
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for i, c := range conns {
			if dialed[i] {
				c.closeNow()
			}
		}
		return nil, firstErr
	}
	return conns, nil
}

func closeAll[C interface{ closeNow() }](conns []C) {
	for _, c := range conns {
		c.closeNow()
	}
}

// fillPayload writes the deterministic content of message seq: its number,
// then letters that depend on it, so a member can check every byte without
// the publisher sharing anything but the sequence.
func fillPayload(b []byte, seq int) {
	var num [20]byte
	s := strconv.AppendInt(num[:0], int64(seq), 10)
	for i := range b {
		b[i] = 'a' + byte((seq+i)%26)
	}
	copy(b, s)
	if len(b) > len(s) {
		b[len(s)] = ' '
	}
}

// percentileUS returns the p-th percentile (0..1) of ns samples, in µs.
func percentileUS(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / 1e3
}

func ff(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// firstError keeps the first error of many goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
	set atomic.Bool
}

func (f *firstError) put(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
		f.set.Store(true)
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// ---- echo ----

// runEcho: each client sends a text message, waits for the same bytes back
// as one frame, and repeats, until -duration or -msgs round trips.
func runEcho(cfg clientConfig) ([]string, error) {
	conns, err := connectMany(cfg.addr, "/echo", cfg.clients, cfg.conc)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	before, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}

	lats := make([][]int64, len(conns))
	var fe firstError
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.duration)
	// One goroutine per client; each ends at the deadline, after -msgs
	// round trips, or at its first error.
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, cfg.size)
			fillPayload(msg, i)
			own := make([]int64, 0, 4096)
			for n := 0; n < cfg.msgs && !fe.set.Load(); n++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if err := c.writeFrame(opText, msg); err != nil {
					fe.put(err)
					break
				}
				fin, op, p, err := c.readFrame()
				if err != nil {
					fe.put(fmt.Errorf("echo read: %w", err))
					break
				}
				if !fin || op != opText || !bytes.Equal(p, msg) {
					fe.put(fmt.Errorf("echo: got fin=%v op=%d %d bytes, want the %d bytes sent as one text frame", fin, op, len(p), len(msg)))
					break
				}
				own = append(own, int64(time.Since(t0)))
			}
			lats[i] = own
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := fe.get(); err != nil {
		return nil, err
	}
	after, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}
	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := len(all)
	return []string{
		"msgs=" + itoa(n),
		"msgs_per_s=" + ff(float64(n)/elapsed.Seconds()),
		"p50_us=" + ff(percentileUS(all, 0.50)),
		"p99_us=" + ff(percentileUS(all, 0.99)),
		"srv_cpu_ns_per_msg=" + ff(float64(after.CPUNanos-before.CPUNanos)/float64(max(n, 1))),
	}, nil
}

// ---- fanout ----

// runFanout: -clients members join the room; one publisher sends up to -msgs
// messages of -size bytes, keeping at most -window broadcasts in flight (a
// broadcast is in flight until its last member has it). Every member checks
// each frame: FIN set, text opcode, the exact bytes of the next sequence
// number. So a lost, reordered, merged or fragmented message fails the run.
//
// Reported: delivered messages per second (members × messages / time from the
// first send to the last delivery), and time-to-last-member p50/p99: for each
// message, from the publisher's send to the moment its last member read it.
func runFanout(cfg clientConfig) ([]string, error) {
	n, m := cfg.clients, cfg.msgs
	members, err := joinMany(cfg.impl, cfg.addr, n, cfg.conc)
	if err != nil {
		return nil, err
	}
	defer closeAll(members)
	if err := waitMembers(cfg.addr, n, 30*time.Second); err != nil {
		return nil, err
	}
	pub, err := dialWS(cfg.addr, "/pub", 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer pub.closeNow()

	var (
		remaining = make([]atomic.Int32, m) // members that have not yet read message i
		sentAt    = make([]atomic.Int64, m) // ns since base, stored before the send
		doneAt    = make([]int64, m)        // ns since base; written once, by the member completing i
		completed atomic.Int64              // messages every member has read; they complete in order
		notify    = make(chan struct{}, 1)  // wakes the publisher when completed grows
		stopping  atomic.Bool               // set before we close the connections ourselves
		fe        firstError
		wg        sync.WaitGroup
		base      = time.Now()
	)
	for i := range remaining {
		remaining[i].Store(int32(n))
	}

	// One reader goroutine per member; each ends when its connection is
	// closed (by the deferred closeAll, after stopping is set) or at its
	// first error.
	for _, c := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := make([]byte, cfg.size)
			for seq := 0; ; seq++ {
				p, err := c.recv()
				if err != nil {
					if !stopping.Load() {
						fe.put(fmt.Errorf("member read before message %d: %w", seq, err))
					}
					return
				}
				if seq >= m {
					fe.put(fmt.Errorf("member got more than the %d messages sent", m))
					return
				}
				fillPayload(want, seq)
				if !bytes.Equal(p, want) {
					fe.put(fmt.Errorf("member: message %d has %d bytes %.20q…, want the %d bytes of message %d",
						seq, len(p), p, cfg.size, seq))
					return
				}
				if remaining[seq].Add(-1) == 0 {
					doneAt[seq] = int64(time.Since(base))
					completed.Add(1)
					select {
					case notify <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	// The publisher connection gets nothing but maybe pings; this reader
	// answers them and ends when the connection is closed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, _, _, err := pub.readFrame(); err != nil {
				return
			}
		}
	}()
	defer func() {
		stopping.Store(true)
		closeAll(members)
		pub.closeNow()
		wg.Wait()
	}()

	before, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}

	// waitFor blocks until at least target messages completed, failing if no
	// message completes for 10 s (a lost message never completes).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	waitFor := func(target int64) error {
		lastProgress, lastSeen := time.Now(), completed.Load()
		for {
			c := completed.Load()
			if c >= target {
				return nil
			}
			if err := fe.get(); err != nil {
				return err
			}
			if c != lastSeen {
				lastProgress, lastSeen = time.Now(), c
			} else if time.Since(lastProgress) > 10*time.Second {
				return fmt.Errorf("stalled: %d of %d messages reached every member; none completed for 10s", c, target)
			}
			select {
			case <-notify:
			case <-tick.C:
			}
		}
	}

	msg := make([]byte, cfg.size)
	sent := 0
	start := time.Now()
	for sent < m && time.Since(start) < cfg.duration {
		if err := waitFor(int64(sent - cfg.window + 1)); err != nil {
			return nil, err
		}
		fillPayload(msg, sent)
		sentAt[sent].Store(int64(time.Since(base)))
		if err := pub.writeFrame(opText, msg); err != nil {
			return nil, fmt.Errorf("publish %d: %w", sent, err)
		}
		sent++
	}
	if err := waitFor(int64(sent)); err != nil {
		return nil, err
	}
	if err := fe.get(); err != nil {
		return nil, err
	}
	after, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}

	lats := make([]int64, sent)
	for i := range lats {
		lats[i] = doneAt[i] - sentAt[i].Load()
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	span := time.Duration(doneAt[sent-1] - sentAt[0].Load())
	delivered := int64(sent) * int64(n)
	return []string{
		"msgs=" + itoa(sent),
		"delivered=" + strconv.FormatInt(delivered, 10),
		"msgs_per_s=" + ff(float64(delivered)/span.Seconds()),
		"p50_us=" + ff(percentileUS(lats, 0.50)),
		"p99_us=" + ff(percentileUS(lats, 0.99)),
		"srv_cpu_ns_per_msg=" + ff(float64(after.CPUNanos-before.CPUNanos)/float64(delivered)),
	}, nil
}

// ---- idle ----

// runIdle: -clients connections join the room and send nothing. The server
// reads its own memory before and after (with a GC both times); the
// difference divided by the connections is the cost of one idle member.
func runIdle(cfg clientConfig) ([]string, error) {
	before, err := fetchStats(cfg.addr, true)
	if err != nil {
		return nil, err
	}
	conns, err := joinMany(cfg.impl, cfg.addr, cfg.clients, cfg.conc)
	if err != nil {
		return nil, err
	}
	var stopping atomic.Bool
	var fe firstError
	var wg sync.WaitGroup
	// A reader per connection answers pings and notices a server that
	// drops idle members; each ends when the deferred close below runs.
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.recv(); err != nil && !stopping.Load() {
				fe.put(fmt.Errorf("idle member: %w", err))
			} else if err == nil && !stopping.Load() {
				fe.put(errors.New("idle member got a message"))
			}
		}()
	}
	defer func() {
		stopping.Store(true)
		closeAll(conns)
		wg.Wait()
	}()
	if err := waitMembers(cfg.addr, cfg.clients, 30*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(cfg.settle)
	after, err := fetchStats(cfg.addr, true)
	if err != nil {
		return nil, err
	}
	if err := fe.get(); err != nil {
		return nil, err
	}
	per := func(a, b uint64) string {
		return ff((float64(a) - float64(b)) / float64(cfg.clients) / 1024)
	}
	return []string{
		"rss_kib_per_conn=" + per(after.RSSBytes, before.RSSBytes),
		"heap_kib_per_conn=" + per(after.HeapBytes, before.HeapBytes),
		"stack_kib_per_conn=" + per(after.StackBytes, before.StackBytes),
		"goroutines_per_conn=" + strconv.FormatFloat(float64(after.Goroutines-before.Goroutines)/float64(cfg.clients), 'f', 2, 64),
	}, nil
}

// ---- handshakes ----

// runHandshakes: -clients workers each open a connection to /echo (the full
// stack: for nexio the middleware chain runs), wait for the 101, drop it and
// start over, until -duration or -msgs handshakes in all.
func runHandshakes(cfg clientConfig) ([]string, error) {
	var (
		count atomic.Int64
		fe    firstError
		wg    sync.WaitGroup
		lats  = make([][]int64, cfg.clients)
	)
	before, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(cfg.duration)
	// Each worker ends at the deadline, when the total reaches -msgs, or at
	// its first error.
	for w := 0; w < cfg.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var own []int64
			for !fe.set.Load() && count.Add(1) <= int64(cfg.msgs) {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				c, err := dialWS(cfg.addr, "/echo", 15*time.Second)
				if err != nil {
					fe.put(err)
					break
				}
				own = append(own, int64(time.Since(t0)))
				c.closeNow()
			}
			lats[w] = own
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := fe.get(); err != nil {
		return nil, err
	}
	after, err := fetchStats(cfg.addr, false)
	if err != nil {
		return nil, err
	}
	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := len(all)
	return []string{
		"conns=" + itoa(n),
		"conns_per_s=" + ff(float64(n)/elapsed.Seconds()),
		"p50_us=" + ff(percentileUS(all, 0.50)),
		"p99_us=" + ff(percentileUS(all, 0.99)),
		"srv_cpu_ns_per_conn=" + ff(float64(after.CPUNanos-before.CPUNanos)/float64(max(n, 1))),
	}, nil
}
