package main

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// TestMakeRunForwardsSignals: the README's `make run` must behave like the
// binary under a terminal's Ctrl-C and a supervisor's SIGTERM to make.
// With `go run`, make's SIGTERM stopped `go` and left the server running,
// orphaned; make now execs the built binary, so the signal reaches it and
// the server shuts down gracefully.
func TestMakeRunForwardsSignals(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the demo with make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "-s", "run", "ARGS=-addr 127.0.0.1:0 -rate 0")
	cmd.Dir = ".."
	stderr, err := cmd.StderrPipe()
	testutil.NoErr(t, err)
	cmd.Stdout = cmd.Stderr
	// Its own process group, so that the cleanup below can reach a server
	// that a broken Makefile would orphan.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	testutil.NoErr(t, cmd.Start())
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	addrCh := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-exited:
		t.Fatalf("make run exited before serving: %v", err)
	case <-time.After(3 * time.Minute): // a cold build on a busy machine
		t.Fatal("make run did not start the server")
	}

	testutil.NoErr(t, cmd.Process.Signal(syscall.SIGTERM)) // make, not the server
	select {
	case <-exited:
	case <-time.After(testutil.EventuallyTimeout):
		t.Fatal("make did not exit after SIGTERM")
	}
	testutil.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "the server at %s still accepts connections after make run got SIGTERM: it was orphaned", addr)
}
