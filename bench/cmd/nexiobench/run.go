package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// runItem is one workload configuration of the plan; it runs once per
// implementation per pass.
type runItem struct {
	label string   // for progress messages
	args  []string // client flags
}

// plan returns the workloads of a quick or full run. The quick plan is sized
// to finish in under ~5 minutes for six implementations and three passes on
// two cores: every measured phase is bounded by its -duration.
func plan(quick bool, fdLimit uint64) []runItem {
	dur := "5s"
	if quick {
		dur = "1500ms"
	}
	items := []runItem{
		{"echo 50 clients", []string{"-workload", "echo", "-clients", "50", "-duration", dur}},
	}
	fanout := []struct{ n, w int }{{100, 32}, {1000, 32}, {5000, 32}}
	// 10,000 members need 10,000 descriptors in each process (plus slack).
	if !quick && fdLimit >= 10_500 {
		fanout = append(fanout, struct{ n, w int }{10_000, 32})
	}
	fanout = append(fanout, struct{ n, w int }{1000, 1})
	for _, f := range fanout {
		items = append(items, runItem{
			fmt.Sprintf("fanout %d members window %d", f.n, f.w),
			[]string{"-workload", "fanout", "-clients", itoa(f.n), "-window", itoa(f.w), "-duration", dur},
		})
	}
	items = append(items,
		runItem{"idle 5000", []string{"-workload", "idle", "-clients", "5000"}},
		runItem{"handshakes 16 workers", []string{"-workload", "handshakes", "-clients", "16", "-duration", dur}},
	)
	return items
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	quick := fs.Bool("quick", false, "the quick plan (make bench): 1.5 s phases")
	passes := fs.Int("passes", 3, "passes over every workload and implementation")
	implList := fs.String("impls", strings.Join(implNames(), ","), "implementations to run, comma-separated")
	only := fs.String("workloads", "", "run only these workloads (comma-separated: echo,fanout,idle,handshakes)")
	_ = fs.Parse(args)

	fdLimit := raiseFileLimit()
	impls := strings.Split(*implList, ",")
	for _, name := range impls {
		if _, ok := registry[name]; !ok {
			return fmt.Errorf("unknown implementation %q (compiled in: %v)", name, implNames())
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var items []runItem
	for _, it := range plan(*quick, fdLimit) {
		if *only == "" || strings.Contains(","+*only+",", ","+it.args[1]+",") {
			items = append(items, it)
		}
	}

	failures := 0
	for pass := 1; pass <= *passes; pass++ {
		for _, it := range items {
			// Interleave: every workload runs for every implementation
			// back to back, and each pass starts with a different one,
			// so a noisy minute of the machine hits them all alike.
			for k := range impls {
				name := impls[(k+pass-1)%len(impls)]
				if only := implWorkloads[name]; only != nil && !slices.Contains(only, it.args[1]) {
					continue
				}
				fmt.Fprintf(os.Stderr, "[pass %d/%d] %-28s %s\n", pass, *passes, it.label, name)
				line, err := runOne(self, name, pass, it.args)
				if line != "" {
					fmt.Println(line)
				}
				if err != nil {
					failures++
					fmt.Fprintf(os.Stderr, "  failed: %v\n", err)
				}
			}
		}
	}
	if failures > 0 {
		return fmt.Errorf("%d runs failed (their lines say ok=0)", failures)
	}
	return nil
}

// runOne starts a fresh server process for impl, runs one client process
// against it, and stops the server. A fresh process per run keeps the idle
// memory baseline clean and stops one run's leftovers from slowing the next.
func runOne(self, impl string, pass int, clientArgs []string) (string, error) {
	srv := exec.Command(self, "server", "-impl", impl, "-addr", "127.0.0.1:0", "-maxlife", "5m")
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := srv.Start(); err != nil {
		return "", err
	}
	// The server is ours until stopServer returns: SIGTERM, then SIGKILL
	// after 5 s; Wait reaps it either way.
	defer stopServer(srv)

	addr, err := listening(out)
	if err != nil {
		return "", err
	}

	args := append([]string{"client", "-addr", addr, "-impl", impl, "-pass", itoa(pass), "-timeout", "90s"}, clientArgs...)
	cl := exec.Command(self, args...)
	cl.Stderr = os.Stderr
	var stdout strings.Builder
	cl.Stdout = &stdout
	// The client's own watchdog ends it at -timeout; this is the backstop.
	cl.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cl.Start(); err != nil {
		return "", err
	}
	go func() { done <- cl.Wait() }()
	select {
	case err = <-done:
	case <-time.After(100 * time.Second):
		_ = cl.Process.Kill()
		err = <-done
	}
	line := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err != nil && line == "" {
		line = fmt.Sprintf("impl=%s workload=%s pass=%d ok=0 err=client_%v", impl, clientArgs[1], pass,
			strings.Join(strings.Fields(err.Error()), "_"))
	}
	return line, err
}

func stopServer(srv *exec.Cmd) {
	_ = srv.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = srv.Process.Kill()
		<-done
	}
}

// listening reads a server's stdout until it says "listening ADDR" and
// returns ADDR; it fails if the server exits first or says nothing
// within 10 s. Its reader goroutine drains out until the server exits
// (EOF), so the server never blocks on a full pipe.
func listening(out io.Reader) (string, error) {
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok && !sent {
				addrc <- a
				sent = true
			}
		}
		if !sent {
			close(addrc)
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case a, ok := <-addrc:
		if !ok {
			return "", errors.New("server exited before listening")
		}
		return a, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("server did not start listening within 10s")
	}
}
