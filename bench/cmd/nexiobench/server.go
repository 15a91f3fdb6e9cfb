package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// roomName is the one room every implementation's /room members join.
const roomName = "bench"

// impl is one server implementation under test. Every implementation serves
// the same three WebSocket routes, so one client drives them all:
//
//	/echo  each text message is sent back unchanged, as its own message
//	/room  joins the room and otherwise only reads (to answer pings and notice the close)
//	/pub   each text message received is broadcast to every member of the room
//
// members reports how many connections are joined to the room right now; the
// client polls it (through /stats) so a fanout starts only when everyone is in.
type impl struct {
	name    string
	echo    http.Handler
	room    http.Handler
	pub     http.Handler
	members func() int
}

// registry holds the implementations compiled into this binary; each impl_*.go
// file registers itself from init, so a build tag can leave one out.
var registry = map[string]func() *impl{}

// implAbout says, for the report, how each implementation is written.
var implAbout = map[string]string{}

// implWorkloads lists the only workloads an implementation runs, for the
// few that do not serve every route (a nil handler); absent means all.
var implWorkloads = map[string][]string{}

func register(name, about string, build func() *impl) {
	registry[name] = build
	implAbout[name] = about
}

// implOrder is the order implementations appear in reports and in pass 1.
var implOrder = []string{"nexio", "nexio-detach", "coder", "coderhub", "gorilla", "melody", "gws", "gws-go", "centrifuge"}

func implNames() []string {
	var names []string
	for _, n := range implOrder {
		if _, ok := registry[n]; ok {
			names = append(names, n)
		}
	}
	var extra []string
	for n := range registry {
		found := false
		for _, m := range names {
			found = found || m == n
		}
		if !found {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	return append(names, extra...)
}

// serverStats is what GET /stats returns. Memory and CPU are read by the
// server process itself, so the client's own goroutines never pollute them.
type serverStats struct {
	Impl       string `json:"impl"`
	Members    int    `json:"members"`
	Goroutines int    `json:"goroutines"`
	RSSBytes   uint64 `json:"rss_bytes"`   // VmRSS from /proc/self/status
	HeapBytes  uint64 `json:"heap_bytes"`  // runtime.MemStats.HeapAlloc (live heap after ?gc=1)
	StackBytes uint64 `json:"stack_bytes"` // runtime.MemStats.StackInuse
	IdleBytes  uint64 `json:"idle_bytes"`  // HeapIdle − HeapReleased: freed, still resident (not yet returned to the OS)
	CPUNanos   int64  `json:"cpu_ns"`      // user+system CPU time of the process so far
}

func readStats(im *impl, gc bool) serverStats {
	if gc {
		// Twice: the first cycle can leave objects with finalizers and the
		// sweep of the first cycle's garbage for the second.
		runtime.GC()
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return serverStats{
		Impl:       im.name,
		Members:    im.members(),
		Goroutines: runtime.NumGoroutine(),
		RSSBytes:   readRSS(),
		HeapBytes:  ms.HeapAlloc,
		StackBytes: ms.StackInuse,
		IdleBytes:  ms.HeapIdle - ms.HeapReleased,
		CPUNanos:   cpuNanos(),
	}
}

// readRSS returns the resident set size in bytes, or 0 if /proc is missing.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := cutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(rest, "%d", &kb); err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// requireLoopback refuses any address that is not on the loopback range:
// this program generates load and must never point it anywhere else.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		return nil
	}
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not loopback; this benchmark only runs on 127.0.0.0/8 or ::1", addr)
	}
	return nil
}

func serverMain(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	name := fs.String("impl", "", "implementation: "+fmt.Sprint(implNames()))
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on (port 0 picks one)")
	maxLife := fs.Duration("maxlife", 15*time.Minute, "exit by itself after this long, whatever happens")
	withPprof := fs.Bool("pprof", false, "also serve net/http/pprof under /debug/pprof/ (to profile one implementation by hand)")
	fs.StringVar(&benchRedis.addr, "redis", "", "nexio: put the hub on hub/redisbroker at this Redis address (idle100k)")
	fs.StringVar(&benchRedis.prefix, "prefix", "nexiobench", "nexio with -redis: the broker's key prefix")
	fs.DurationVar(&benchPongTimeout, "pongtimeout", 0, "nexio: wsroute.Options.PongTimeout (0: its default; idle100k)")
	_ = fs.Parse(args)

	build, ok := registry[*name]
	if !ok {
		return fmt.Errorf("unknown -impl %q (compiled in: %v)", *name, implNames())
	}
	if err := requireLoopback(*addr); err != nil {
		return err
	}
	raiseFileLimit()
	im := build()
	im.name = *name

	mux := http.NewServeMux()
	for path, h := range map[string]http.Handler{"/echo": im.echo, "/room": im.room, "/pub": im.pub} {
		if h != nil {
			mux.Handle(path, h)
		}
	}
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(readStats(im, r.URL.Query().Get("gc") == "1"))
	})

	if *withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Backlog matters for the idle and fanout setups (thousands of dials);
	// Go already asks for the kernel's somaxconn.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// The parent (run mode) reads this line to learn the port.
	fmt.Printf("listening %s\n", ln.Addr())

	// The serving goroutine is owned by this function; it ends when the
	// process exits below (signal or maxlife), which also drops every
	// connection, so no implementation needs a shutdown path of its own.
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case <-time.After(*maxLife):
		return fmt.Errorf("server %s: maxlife %v reached", *name, *maxLife)
	case err := <-errc:
		return err
	}
}

// itoa is strconv.Itoa, kept short for result lines.
func itoa(n int) string { return strconv.Itoa(n) }
