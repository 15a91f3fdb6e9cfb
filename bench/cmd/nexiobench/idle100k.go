package main

// The 100,000-member run (bash idle100k.sh): nexio the way it is deployed
// at that size, several server processes sharing one Redis through
// hub/redisbroker, every member idle in one room:
//
//	nexiobench idle100k -members 100000 -procs 8 -redis 127.0.0.1:PORT
//
// 1. Start -procs server processes (nexiobench server -impl nexio -redis),
//    and read their memory (after a GC) and the kernel's (/proc/meminfo,
//    /proc/net/sockstat) and Redis' before anyone connects.
// 2. Start one client process per server (nexiobench idle-client), each
//    dialing its share of members from its own 127.0.0.x, since one
//    source address has only ~28,000 ephemeral ports and a process may
//    hold 20,000 files here. Measured: from starting the clients to every
//    server counting all its members.
// 3. After -settle, read the memory again: the difference over the
//    members is the cost of one idle member.
// 4. Broadcast -msgs messages, one at a time, through the first server's
//    /pub: every other server gets them through Redis. Each client process
//    reports when its last member has a message; time to last member is
//    the latest of those minus the send (one clock: one machine).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/redis/go-redis/v9"
)

// benchRedis, set by server -redis, puts nexio's hub on hub/redisbroker.
var benchRedis struct{ addr, prefix string }

// benchPongTimeout, set by server -pongtimeout, is nexio's PongTimeout.
// idle100k raises it: with 17 busy processes on two shared cores, a
// member's pong can wait behind the others for more than the default
// 20 s, and the server then drops a live member as dead.
var benchPongTimeout time.Duration

// nexioHubOptions is the hub's configuration for newNexio: the defaults,
// with a Redis broker when the server was given -redis.
func nexioHubOptions() *hub.Options {
	if benchRedis.addr == "" {
		return nil
	}
	client := redis.NewClient(&redis.Options{Addr: benchRedis.addr})
	// The broker's defaults: its heartbeat no longer refreshes a key per
	// connection (the first runs needed PresenceTTL 60 s for that).
	return &hub.Options{Broker: redisbroker.New(client, &redisbroker.Options{
		Prefix: benchRedis.prefix,
	})}
}

// kernelMem is what the kernel says of its own memory, in bytes.
type kernelMem struct {
	slab, avail, tcpMem uint64
	sockSlab            uint64 // the slab caches each TCP socket takes an object of
	sockets             int
}

// socketCaches are the slab caches of which an accepted or dialed TCP
// socket with its file, inode and epoll registration holds one object.
var socketCaches = []string{"TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq"}

func readKernelMem() kernelMem {
	var k kernelMem
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseUint(f[1], 10, 64)
			switch f[0] {
			case "Slab:":
				k.slab = v * 1024
			case "MemAvailable:":
				k.avail = v * 1024
			}
		}
	}
	// "sockets: used N" and "TCP: inuse N orphan N tw N alloc N mem PAGES"
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "sockets:" {
				k.sockets, _ = strconv.Atoi(f[2])
			}
			if i := slices.Index(f, "mem"); len(f) > 0 && f[0] == "TCP:" && i > 0 && i+1 < len(f) {
				pages, _ := strconv.ParseUint(f[i+1], 10, 64)
				k.tcpMem = pages * uint64(os.Getpagesize())
			}
		}
	}
	// "name active_objs num_objs objsize ..." (root only; 0 otherwise)
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && slices.Contains(socketCaches, f[0]) {
				objs, _ := strconv.ParseUint(f[1], 10, 64)
				size, _ := strconv.ParseUint(f[3], 10, 64)
				k.sockSlab += objs * size
			}
		}
	}
	return k
}

// loadavg is the 1, 5 and 15 minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "unknown"
}

// procRSS is the resident set of process pid, from /proc/pid/status.
func procRSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func redisRSS(client *redis.Client) uint64 {
	info, err := client.Info(context.Background(), "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory_rss:"); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// startListening starts cmd (a server printing "listening ADDR") and
// returns the address. On error the process is stopped.
func startListening(cmd *exec.Cmd) (string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	a, err := listening(out)
	if err == nil {
		return a, nil
	}
	stopServer(cmd)
	return "", err
}

// child makes cmd die with this process, whatever ends it.
func child(cmd *exec.Cmd) *exec.Cmd {
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// clientProc is one idle-client process and what it reported.
type clientProc struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	joined chan error
}

// doneEvent: client process proc's last member read message seq at t (ns).
type doneEvent struct {
	proc, seq int
	t         int64
}

func idle100kMain(args []string) error {
	fs := flag.NewFlagSet("idle100k", flag.ExitOnError)
	implName := fs.String("impl", "nexio", "nexio (members held by their handler) or nexio-detach (Conn.Detach)")
	members := fs.Int("members", 100_000, "members in all")
	procs := fs.Int("procs", 8, "server processes, and as many client processes")
	redisAddr := fs.String("redis", "", "Redis address (loopback) the servers share")
	prefix := fs.String("prefix", "idle100k", "redisbroker key prefix")
	msgs := fs.Int("msgs", 50, "broadcasts to time")
	duration := fs.Duration("duration", 60*time.Second, "upper bound on the broadcast phase")
	settle := fs.Duration("settle", 5*time.Second, "wait after the last join before reading memory")
	conc := fs.Int("conc", 8, "dials in flight per client process")
	timeout := fs.Duration("timeout", 10*time.Minute, "hard limit for the whole run")
	command := fs.String("cmd", "bash bench/idle100k.sh", "the command that ran this, for the report")
	_ = fs.Parse(args)
	loadBefore := loadavg()
	if err := requireLoopback(*redisAddr); err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	if *implName != "nexio" && *implName != "nexio-detach" {
		return fmt.Errorf("-impl %q: idle100k runs nexio or nexio-detach", *implName)
	}
	if *procs < 1 || *procs > 200 || *members < *procs {
		return fmt.Errorf("-procs %d: want 1..200 and at most -members", *procs)
	}
	time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "idle100k: run exceeded -timeout %v\n", *timeout)
		os.Exit(1) // children die with us (Pdeathsig)
	})
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", *redisAddr, err)
	}

	// 1. Servers.
	servers := make([]*exec.Cmd, *procs)
	addrs := make([]string, *procs)
	clients := make([]*clientProc, *procs)
	// Servers first, so that theirs are the closing ends (TIME_WAIT on
	// the servers' ports, not on the clients' 127.0.0.x ports the next
	// run dials from); closing a client's stdin then lets it exit.
	var ending atomic.Bool // the members' EOFs are expected from now on
	defer func() {
		ending.Store(true)
		for _, s := range servers {
			if s != nil {
				stopServer(s)
			}
		}
		for _, c := range clients {
			if c != nil {
				_ = c.stdin.Close()
				waitOrKill(c.cmd, 10*time.Second)
			}
		}
	}()
	for i := range servers {
		cmd := child(exec.Command(self, "server", "-impl", *implName, "-addr", "127.0.0.1:0",
			"-redis", *redisAddr, "-prefix", *prefix, "-pongtimeout", "2m", "-maxlife", timeout.String()))
		a, err := startListening(cmd)
		if err != nil {
			return fmt.Errorf("server %d: %w", i, err)
		}
		servers[i], addrs[i] = cmd, a
	}
	statsAll := func() (st serverStats, err error) {
		for _, a := range addrs {
			s, err := fetchStats(a, true)
			for try := 1; err != nil && try < 3; try++ { // busy: 10 s per try
				s, err = fetchStats(a, true)
			}
			if err != nil {
				return st, err
			}
			st.Members += s.Members
			st.Goroutines += s.Goroutines
			st.RSSBytes += s.RSSBytes
			st.HeapBytes += s.HeapBytes
			st.StackBytes += s.StackBytes
			st.IdleBytes += s.IdleBytes
		}
		return st, nil
	}
	before, err := statsAll()
	if err != nil {
		return err
	}
	kBefore, redisBefore := readKernelMem(), redisRSS(rdb)

	// 2. Clients, one per server, each from its own source address.
	events := make(chan doneEvent, 64**procs)
	var lost atomic.Int64 // members the servers dropped
	start := time.Now()
	for i := range clients {
		n := *members / *procs
		if i < *members%*procs {
			n++
		}
		cmd := child(exec.Command(self, "idle-client", "-addr", addrs[i], "-members", itoa(n),
			"-src", fmt.Sprintf("127.0.0.%d", 11+i), "-conc", itoa(*conc), "-msgs", itoa(*msgs),
			"-timeout", timeout.String()))
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		c := &clientProc{cmd: cmd, stdin: in, joined: make(chan error, 1)}
		clients[i] = c
		// Reads the client's report lines; ends at its exit (EOF).
		go func() {
			sc := bufio.NewScanner(out)
			joined := false
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case len(f) >= 1 && f[0] == "joined" && !joined:
					joined = true
					c.joined <- nil
				case len(f) == 3 && f[0] == "done":
					seq, _ := strconv.Atoi(f[1])
					t, _ := strconv.ParseInt(f[2], 10, 64)
					events <- doneEvent{i, seq, t}
				case len(f) >= 1 && f[0] == "lost" && !ending.Load():
					if lost.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "client %d: first member the server dropped: %s\n", i, sc.Text())
					}
				case len(f) >= 1 && f[0] == "error" && !joined:
					joined = true
					c.joined <- errors.New(sc.Text())
				case !ending.Load():
					// An error after joining ends the client process,
					// which fails the run at its next step: say why.
					fmt.Fprintf(os.Stderr, "client %d: %s\n", i, sc.Text())
				}
			}
			if !joined {
				c.joined <- fmt.Errorf("client process %d exited before joining", i)
			}
		}()
	}
	for i, c := range clients {
		if err := <-c.joined; err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
	}
	// Every member is in (or was dropped since): some join after the
	// handshake the client saw.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		in, slow := 0, error(nil)
		for _, a := range addrs {
			st, err := fetchStats(a, false)
			if err != nil {
				slow = err // a server too busy to answer in 10 s: ask again
				break
			}
			in += st.Members
		}
		if slow == nil && in+int(lost.Load()) >= *members {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d members in the room after a minute (%d dropped; last /stats error: %v)", in, *members, lost.Load(), slow)
		}
	}
	connectTime := time.Since(start)
	fmt.Fprintf(os.Stderr, "idle100k: %d members on %d servers in %v\n", *members, *procs, connectTime.Round(time.Millisecond))

	// 3. Memory.
	time.Sleep(*settle)
	after, err := statsAll()
	if err != nil {
		return err
	}
	kAfter, redisAfter := readKernelMem(), redisRSS(rdb)
	var clientRSS uint64
	for _, c := range clients {
		clientRSS += procRSS(c.cmd.Process.Pid)
	}

	// 4. Broadcasts through server 0, one at a time.
	// A broadcast that stalls ends the phase; the memory figures and the
	// broadcasts before it are still reported, with why it stopped.
	lats, stalled := broadcast100k(addrs[0], *procs, *msgs, *duration, events)
	if stalled != nil {
		fmt.Fprintln(os.Stderr, "idle100k:", stalled)
		if len(lats) == 0 {
			return stalled
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })

	n := float64(after.Members) // the ones still in
	kib := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n / 1024 }
	r := idle100kResult{
		impl: *implName, members: *members, procs: *procs, connect: connectTime, lost: int(lost.Load()),
		rssPer:        kib(after.RSSBytes, before.RSSBytes),
		rssTotalPer:   float64(after.RSSBytes) / n / 1024,
		heapPer:       kib(after.HeapBytes, before.HeapBytes),
		stackPer:      kib(after.StackBytes, before.StackBytes),
		idlePer:       kib(after.IdleBytes, before.IdleBytes),
		goroutinesPer: float64(after.Goroutines-before.Goroutines) / n,
		// Both ends of every connection are on this machine: 2 sockets
		// per member, alike enough (idle, empty buffers) to halve.
		slabPerSocket: kib(kAfter.slab, kBefore.slab) / 2,
		objsPerSocket: kib(kAfter.sockSlab, kBefore.sockSlab) / 2,
		tcpMemPer:     kib(kAfter.tcpMem, kBefore.tcpMem),
		sockets:       kAfter.sockets - kBefore.sockets,
		availPer:      kib(kBefore.avail, kAfter.avail),
		redisPer:      kib(redisAfter, redisBefore),
		clientPer:     float64(clientRSS) / n / 1024,
		bcasts:        len(lats),
		p50:           percentileUS(lats, 0.5),
		p99:           percentileUS(lats, 0.99),
		max:           percentileUS(lats, 1),
		stalled:       stalled,
	}
	fmt.Print(r.markdown(*command, loadBefore, loadavg()))
	fmt.Fprintln(os.Stderr, r.line())
	return nil
}

// broadcast100k sends msgs broadcasts through addr's /pub, the next once
// every client process reported the last, and returns each one's time to
// its last member (ns); with an error, those before the one that failed.
func broadcast100k(addr string, procs, msgs int, duration time.Duration, events <-chan doneEvent) ([]int64, error) {
	pub, err := dialWS(addr, "/pub", 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer pub.closeNow()
	// Answers the server's pings; ends when pub is closed.
	go func() {
		for {
			if _, _, _, err := pub.readFrame(); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 128)
	var lats []int64
	phaseEnd := time.Now().Add(duration)
	for seq := 0; seq < msgs && time.Now().Before(phaseEnd); seq++ {
		fillPayload(msg, seq)
		sent := time.Now().UnixNano()
		if err := pub.writeFrame(opText, msg); err != nil {
			return lats, fmt.Errorf("publish %d: %w", seq, err)
		}
		var last int64
		seen := make(map[int]bool, procs)
		stall := time.NewTimer(30 * time.Second)
		for len(seen) < procs {
			select {
			case e := <-events:
				if e.seq != seq {
					stall.Stop()
					return lats, fmt.Errorf("client %d reported message %d while %d was the one in flight", e.proc, e.seq, seq)
				}
				seen[e.proc] = true
				last = max(last, e.t)
			case <-stall.C:
				return lats, fmt.Errorf("message %d reached %d of %d client processes' members in 30s", seq, len(seen), procs)
			}
		}
		stall.Stop()
		lats = append(lats, last-sent)
	}
	return lats, nil
}

type idle100kResult struct {
	impl                                                           string
	members, procs, bcasts, sockets, lost                          int
	connect                                                        time.Duration
	rssPer, rssTotalPer, heapPer, stackPer, idlePer, goroutinesPer float64
	slabPerSocket, objsPerSocket, tcpMemPer, availPer, redisPer    float64
	clientPer, p50, p99, max                                       float64
	stalled                                                        error
}

func (r idle100kResult) line() string {
	return fmt.Sprintf("impl=%s workload=idle100k members=%d procs=%d connect_ms=%d rss_kib_per_member=%.2f rss_total_kib_per_member=%.2f "+
		"heap_kib_per_member=%.2f stack_kib_per_member=%.2f idle_heap_kib_per_member=%.2f goroutines_per_member=%.2f kernel_slab_kib_per_socket=%.2f "+
		"socket_slab_objs_kib_per_socket=%.2f tcp_mem_kib_per_member=%.3f sockets=%d memavail_drop_kib_per_member=%.2f redis_kib_per_member=%.2f client_rss_kib_per_member=%.2f "+
		"broadcasts=%d p50_us=%.0f p99_us=%.0f max_us=%.0f lost=%d ok=1",
		r.impl, r.members, r.procs, r.connect.Milliseconds(), r.rssPer, r.rssTotalPer, r.heapPer, r.stackPer, r.idlePer, r.goroutinesPer,
		r.slabPerSocket, r.objsPerSocket, r.tcpMemPer, r.sockets, r.availPer, r.redisPer, r.clientPer, r.bcasts, r.p50, r.p99, r.max, r.lost)
}

// markdown is the section of docs/benchmarks.md (run.sh includes the
// last one bench/idle100k.sh wrote): the table, the command, and the
// million-member projection from the measured figures.
func (r idle100kResult) markdown(command, loadBefore, loadAfter string) string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	row := func(what, v string) { p("| %s | %s |\n", what, v) }
	held := "each member held by its handler as in the idle workload above"
	if r.impl == "nexio-detach" {
		held = "each member detached with `Conn.Detach`, as `nexio-detach`"
	}
	p("## %s idle members: %d %s processes on one Redis\n\n", group(r.members), r.procs, r.impl)
	p("nexio as it is deployed at that size: %d server processes (`wsroute` + the `wsmw` chain + `hub` on `hub/redisbroker`, ", r.procs)
	p("%s), one Redis with presence on ", held)
	p("(the broker's defaults; `PongTimeout` raised from 20 s to 2 min: ")
	p("with every process on two shared cores a live member's pong can wait longer than 20 s, and it was then dropped as dead), ")
	p("and %d client processes, each dialing its share from its own 127.0.0.x: a process may hold 20,000 files here, ", r.procs)
	p("and one source address has ~28,000 ephemeral ports. Everything, Redis and the clients included, shares the 2 cores. ")
	p("Memory is read after the last join and a GC; a broadcast goes to the first server's `/pub` and reaches the others through Redis, ")
	p("one at a time, and its time to last member runs from the send to the moment the last of all %s members read it.\n\n", group(r.members))
	p("| measured | |\n|---|---:|\n")
	row("time to connect all (handshake + join, from starting the clients)", r.connect.Round(10*time.Millisecond).String())
	row("members the servers dropped during the run", itoa(r.lost))
	row("server RSS per member (after − before)", fmt.Sprintf("%.1f KiB", r.rssPer))
	row("server RSS per member (sum of server RSS ÷ members)", fmt.Sprintf("%.1f KiB", r.rssTotalPer))
	row("of which Go heap in use / stacks / heap freed but not yet returned to the OS, per member",
		fmt.Sprintf("%.1f / %.1f / %.1f KiB", r.heapPer, r.stackPer, r.idlePer))
	row("goroutines per member", fmt.Sprintf("%.2f", r.goroutinesPer))
	row("kernel per socket: Slab growth ÷ 2 (both ends are here)", fmt.Sprintf("%.1f KiB", r.slabPerSocket))
	row("kernel per socket: its objects in "+strings.Join(socketCaches, ", ")+" (/proc/slabinfo)", fmt.Sprintf("%.1f KiB", r.objsPerSocket))
	row("Redis RSS per member (presence)", fmt.Sprintf("%.2f KiB", r.redisPer))
	row("client RSS per member (load generator)", fmt.Sprintf("%.1f KiB", r.clientPer))
	row("machine MemAvailable drop per member (all of the above, both ends; other work on the machine moves it)", fmt.Sprintf("%.1f KiB", r.availPer))
	row(fmt.Sprintf("broadcast, time to last member p50 / p99 (%d broadcasts)", r.bcasts), dur(r.p50)+" / "+dur(r.p99))
	if r.stalled != nil {
		row("broadcasts stopped early", r.stalled.Error())
	}
	p("\nCommand: `%s` (%s, load average before %s, after %s)\n\n", command, time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadBefore, loadAfter)

	// The projection: per member, the server's user space and the kernel's
	// one socket (the clients are elsewhere in a deployment).
	const gib = 1 << 20 // KiB
	// The larger of the two kernel figures: other work on the machine
	// moves the Slab total, and the listed caches are not all of it.
	kernel := max(r.slabPerSocket, r.objsPerSocket)
	perMember := r.rssPer + kernel
	perTotal := r.rssTotalPer + kernel
	p("### One million members, on paper\n\n")
	p("Per member the server machine pays its user space (%.1f KiB, after − before) and one socket in the kernel (%.1f KiB, the larger kernel figure): ", r.rssPer, kernel)
	p("%.1f KiB, so 1,000,000 members take %.1f GiB", perMember, perMember*1e6/gib)
	p(" (%.1f GiB counting each process's baseline, %.1f KiB per member) of this machine's 24 GiB: ", perTotal*1e6/gib, perTotal)
	if perTotal*1e6/gib < 24*0.9 {
		p("they fit, with %.1f GiB left for everything else.", 24-perTotal*1e6/gib)
	} else {
		p("they do **not** fit with room to spare (a tenth kept for the system).")
	}
	p(" At 20,000 files per process that is at least %d server processes, or a higher `ulimit -n`. ", (1_000_000+19_000-1)/19_000)
	p("Redis' presence adds %.1f GiB on the Redis machine. ", r.redisPer*1e6/gib)
	p("Not projected: time to connect and broadcast latency, which depend on cores, not memory (here everything shares 2).\n")
	return b.String()
}

// idleClientMain is one client process of idle100k: it joins -members
// members from -src, says "joined", then for each message prints "done
// SEQ UNIXNANO" when its last member has read it (checked byte for
// byte), until its stdin closes.
func idleClientMain(args []string) error {
	fs := flag.NewFlagSet("idle-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address (loopback)")
	impl := fs.String("impl", "nexio", "how members join (member.go)")
	src := fs.String("src", "", "local address to dial from (127.0.0.x)")
	n := fs.Int("members", 12_500, "members")
	conc := fs.Int("conc", 8, "dials in flight")
	msgs := fs.Int("msgs", 50, "the most messages that will be sent")
	timeout := fs.Duration("timeout", 10*time.Minute, "hard limit")
	_ = fs.Parse(args)
	if err := requireLoopback(*addr); err != nil {
		return err
	}
	raiseFileLimit()
	time.AfterFunc(*timeout, func() { fmt.Println("error timeout"); os.Exit(1) })
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		fmt.Printf(format+"\n", a...)
		outMu.Unlock()
	}
	// A 512-byte read buffer: members read 132-byte frames, and 100,000
	// of them with the default 4 KiB would cost the machine 400 MiB.
	conns, err := dialMany(*n, *conc, func() (member, error) { return joinRoom(*impl, *src, *addr, 512) })
	if err != nil {
		say("error %v", err)
		return err
	}
	say("joined %d", *n)

	remaining := make([]atomic.Int32, *msgs)
	for i := range remaining {
		remaining[i].Store(int32(*n))
	}
	var stopping atomic.Bool
	var wg sync.WaitGroup
	// One reader per member; each ends when its connection is closed
	// below (stdin closed) or by the server. A wrong message ends the
	// process; a member the server drops (on a machine this loaded,
	// keepalive can) is reported as "lost" and no longer waited for.
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := make([]byte, 128)
			for seq := 0; ; seq++ {
				p, err := c.recv()
				if err != nil {
					if stopping.Load() {
						return
					}
					say("lost %v", err)
					for s := seq; s < *msgs; s++ {
						if remaining[s].Add(-1) == 0 {
							say("done %d %d", s, time.Now().UnixNano())
						}
					}
					return
				}
				if seq >= *msgs {
					err = fmt.Errorf("more than the %d messages sent", *msgs)
				} else if fillPayload(want, seq); !bytes.Equal(p, want) {
					err = fmt.Errorf("message %d is not the one sent", seq)
				}
				if err != nil {
					say("error member: %v", err)
					os.Exit(1)
				}
				if remaining[seq].Add(-1) == 0 {
					say("done %d %d", seq, time.Now().UnixNano())
				}
			}
		}()
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	stopping.Store(true)
	closeAll(conns)
	wg.Wait()
	return nil
}

// waitOrKill waits for cmd to exit, killing it after grace.
func waitOrKill(cmd *exec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}
