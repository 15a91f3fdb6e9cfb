package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/wsroute"
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

// BenchmarkFanoutHistory is the fanout of the load tests, in process:
// 1,000 members of one room, 128-byte messages, at most 32 broadcasts in
// flight (a broadcast waits until the slowest member has received the
// one 32 before it), with history off and kept in memory. It reports
// deliveries per second; the cost of history is the ratio of the two.
func BenchmarkFanoutHistory(b *testing.B) {
	raiseFileLimit(b)
	const n, window = 1000, 32
	for _, tc := range []struct {
		name string
		hist hub.History
	}{
		{"history=off", hub.History{}},
		{"history=memory", hub.History{Size: 1000}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rs := newRoomServer(b, &hub.Options{History: tc.hist}, &wsroute.Options{PingInterval: -1})
			counts := make([]atomic.Int64, n)
			for i := range n {
				nc := countingMember(b, rs, "fan", &counts[i])
				b.Cleanup(func() { nc.Close() })
			}
			rs.joined(b, "fan", n)
			slowest := func() int64 {
				low := counts[0].Load()
				for i := range counts {
					low = min(low, counts[i].Load())
				}
				return low
			}
			msg := []byte(strings.Repeat("x", 128))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for int64(i)-slowest() >= window {
					runtime.Gosched()
				}
				if err := rs.hub.Broadcast(ctx, "fan", wsroute.MessageText, msg); err != nil {
					b.Fatal(err)
				}
			}
			for slowest() < int64(b.N) {
				runtime.Gosched()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// countingMember joins room with a raw client that counts the messages
// it reads.
func countingMember(b *testing.B, rs *roomServer, room string, count *atomic.Int64) net.Conn {
	nc, err := net.Dial("tcp", strings.TrimPrefix(rs.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(nc, "GET /ws/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", room)
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	go func() { // ends when the connection closes
		var h [8]byte
		for {
			if _, err := io.ReadFull(br, h[:2]); err != nil {
				return
			}
			size := int64(h[1] & 0x7f)
			switch size {
			case 126:
				if _, err := io.ReadFull(br, h[:2]); err != nil {
					return
				}
				size = int64(h[0])<<8 | int64(h[1])
			case 127:
				if _, err := io.ReadFull(br, h[:8]); err != nil {
					return
				}
				size = 0
				for _, c := range h {
					size = size<<8 | int64(c)
				}
			}
			if _, err := br.Discard(int(size)); err != nil {
				return
			}
			count.Add(1)
		}
	}()
	return nc
}
