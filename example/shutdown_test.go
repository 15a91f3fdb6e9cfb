package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"

	"github.com/nexio-go/nexio/wsroute"
	"github.com/nexio-go/nexio/wsroute/wstest"
)

// TestShutdown stops the app in process: every client, on every kind of
// route, gets 1001, and so does anyone arriving afterwards.
func TestShutdown(t *testing.T) {
	t.Parallel()
	ta := start(t, config{})
	var conns []*wstest.Conn
	for _, path := range []string{"/ws/echo", "/ws/lifecycle", "/ws/broadcast", "/ws/chat", "/ws/rooms/a", "/ws/rooms/a",
		"/ws/secure/echo?token=valid_token"} {
		conns = append(conns, ta.dial(t, path, nil))
	}
	testutil.Eventually(t, func() bool { return ta.tracker.Len() == len(conns) && ta.rooms.Count("a") == 2 }, "all connected")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	testutil.NoErr(t, ta.Shutdown(ctx))
	testutil.Check(t, time.Since(began) < 3*time.Second, "Shutdown took %v", time.Since(began))
	for _, c := range conns {
		code, reason, err := c.ReadClose()
		testutil.NoErr(t, err)
		testutil.Equal(t, code, wsroute.StatusGoingAway)
		testutil.Equal(t, reason, "going away")
	}
	testutil.Equal(t, ta.tracker.Len(), 0)

	late := ta.dial(t, "/ws/echo", nil)
	testutil.NoErr(t, late.ExpectClose(wsroute.StatusGoingAway))
	testutil.NoErr(t, ta.Shutdown(ctx)) // twice is harmless
}

// TestSignalShutdown runs the real main in a child process (this test
// binary, see TestMain) and sends it SIGTERM: clients see 1001 and the
// process exits 0 within five seconds.
func TestSignalShutdown(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=-addr 127.0.0.1:0 -rate 5")
	stderr, err := cmd.StderrPipe()
	testutil.NoErr(t, err)
	testutil.NoErr(t, cmd.Start())
	exited := make(chan error, 1)
	logs := &logBuffer{}

	// The child logs its address; the rest of its log is kept for
	// failures.
	addrCh := make(chan string, 1)
	go func() {
		addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
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
	t.Cleanup(func() {
		cmd.Process.Kill()
	})

	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not start; log:\n%s", logs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var clients []*websocket.Conn
	for _, path := range []string{"/ws/echo", "/ws/rooms/a?name=ann", "/ws/chat"} {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+path, nil)
		testutil.NoErr(t, err)
		defer c.CloseNow()
		clients = append(clients, c)
	}
	testutil.NoErr(t, clients[0].Write(ctx, websocket.MessageText, []byte("hi")))
	_, msg, err := clients[0].Read(ctx)
	testutil.NoErr(t, err)
	testutil.Equal(t, string(msg), "Echo: hi")

	began := time.Now()
	testutil.NoErr(t, cmd.Process.Signal(syscall.SIGTERM))
	for _, c := range clients {
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		testutil.Check(t, errors.As(err, &ce), "want a close frame, got %v", err)
		testutil.Equal(t, ce.Code, websocket.StatusGoingAway)
	}
	select {
	case err := <-exited:
		testutil.NoErr(t, err) // exit status 0
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after SIGTERM; log:\n%s", logs)
	}
	testutil.Check(t, time.Since(began) < 5*time.Second, "exit took %v", time.Since(began))
	testutil.Check(t, strings.Contains(logs.String(), "stopped"), "log:\n%s", logs)
	testutil.Equal(t, len(logs.lines("level=ERROR")), 0)
}
