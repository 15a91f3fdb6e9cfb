package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nexio-go/nexio/hub"
)

// BenchmarkBroadcast measures what a broadcast costs its caller: the
// enqueue into every member's queue (the writes happen on the members'
// writer goroutines). Members are raw TCP clients that discard what they
// read, so the allocations reported are the server's. Look at ns/op
// divided by members for the enqueue cost per member.
func BenchmarkBroadcast(b *testing.B) {
	raiseFileLimit(b)
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			// A large queue and DropNewest: the benchmark measures the
			// caller's side, not whether readers keep up.
			rs := newRoomServer(b, &hub.Options{QueueMessages: 1 << 16, QueueBytes: 1 << 30, SlowConsumer: hub.DropNewest}, nil)
			if n > 4000 {
				// Too many descriptors for one process: the members
				// live in a child process.
				startDiscardMembers(b, rs, "bench", n)
			} else {
				for range n {
					nc := discardMember(b, rs, "bench")
					b.Cleanup(func() { nc.Close() })
				}
			}
			rs.joined(b, "bench", n)
			msg := []byte(strings.Repeat("x", 128))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rs.hub.Broadcast(ctx, "bench", 1, msg)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/member")
		})
	}
}

// startDiscardMembers runs n discarding members in a child process (this
// test binary, running TestDiscardMembersProcess); they leave when the
// benchmark ends and closes the child's stdin.
func startDiscardMembers(b *testing.B, rs *roomServer, room string, n int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiscardMembersProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("NEXIO_DISCARD_MEMBERS=%s|%s|%d", rs.URL, room, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
}

// TestDiscardMembersProcess is the child of startDiscardMembers; it does
// nothing in a normal test run.
func TestDiscardMembersProcess(t *testing.T) {
	spec := os.Getenv("NEXIO_DISCARD_MEMBERS")
	if spec == "" {
		t.Skip("only runs as the benchmark's child process")
	}
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	var conns []net.Conn
	for range n {
		nc, err := dialMember(parts[0], parts[1])
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	for _, nc := range conns {
		nc.Close()
	}
}

// dialMember opens a raw member of room that reads and discards.
func dialMember(url, room string) (net.Conn, error) {
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(nc, "GET /ws/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", room)
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			nc.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	go io.Copy(io.Discard, br) // ends when the connection closes
	return nc, nil
}

// discardMember joins room with a raw client that reads and discards.
func discardMember(b *testing.B, rs *roomServer, room string) net.Conn {
	nc, err := dialMember(rs.URL, room)
	if err != nil {
		b.Fatal(err)
	}
	return nc
}

func raiseFileLimit(b *testing.B) {
	// 10,000 members are 20,000 descriptors in this process: raise the
	// hard limit too where allowed (root), else use what there is.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 16, Max: max(lim.Max, 1<<16)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
