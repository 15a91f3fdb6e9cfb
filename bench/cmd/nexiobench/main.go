// Command nexiobench runs side-by-side WebSocket benchmarks of nexio and its
// peers (raw coder/websocket, coder/websocket with a channel hub, the
// gorilla/websocket chat hub, olahol/melody and lxzan/gws).
//
// It is one binary with four subcommands:
//
//	nexiobench server -impl NAME -addr 127.0.0.1:0   one implementation, until killed or -maxlife
//	nexiobench client -workload W -addr A ...        drives one workload, prints one result line
//	nexiobench run [-quick] [-passes N]              exec's server and client per run, interleaved
//	nexiobench report -in FILE -md F -svg F          medians, ranges and the chart from result lines
//
// The server and the load generator always run in separate processes, on
// loopback only, and every loop in them is bounded in count and time.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = serverMain(os.Args[2:])
	case "client":
		err = clientMain(os.Args[2:])
	case "run":
		err = runMain(os.Args[2:])
	case "report":
		err = reportMain(os.Args[2:])
	case "storm":
		err = stormMain(os.Args[2:])
	case "storm-node":
		err = stormNodeMain(os.Args[2:])
	case "idle100k":
		err = idle100kMain(os.Args[2:])
	case "idle-client":
		err = idleClientMain(os.Args[2:])
	case "impls":
		for _, name := range implNames() {
			fmt.Println(name)
		}
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexiobench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: nexiobench server|client|run|report|impls [flags]
  server -impl NAME -addr 127.0.0.1:0       serve one implementation (prints "listening ADDR")
  client -workload echo|fanout|idle|handshakes -addr ADDR ...
  run    [-quick] [-passes 3] [-impls a,b]  start a server process per run, interleave implementations
  report -in results.txt -md docs/benchmarks.md -svg docs/benchmarks-fanout.svg
  storm  -impl nexio|centrifuge -engine memory|redis [-members 5000 -msgs 10000]
                                            the reconnect storm (storm.go)
  idle100k -redis ADDR [-members 100000 -procs 8]
                                            idle members over several processes on one Redis (idle100k.go)
  impls                                     list the implementations compiled in`)
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: 5,000+
// connections need as many descriptors on each side of the loopback.
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
	}
	return lim.Cur
}
