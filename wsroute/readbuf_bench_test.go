package wsroute_test

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/nexio-go/nexio/internal/testutil"

	"github.com/coder/websocket"
)

// BenchmarkIdleConn measures what an accepted connection whose handler
// waits in Receive keeps in the Go heap and in goroutine stacks, through
// wsroute next to raw coder/websocket (readbuf.go frees net/http's two
// 4 KiB buffers). The clients are bare TCP connections (about 0.5 KiB
// each, included) that send nothing after the handshake. It opens
// idleConns connections whatever b.N is: the metrics are per connection,
// and ns/op means nothing here. bench/'s idle workload measures the same
// with RSS, in a separate server process, against other libraries.
func BenchmarkIdleConn(b *testing.B) {
	const idleConns = 1000
	for _, raw := range []bool{false, true} {
		name := "wsroute"
		if raw {
			name = "coder"
		}
		b.Run(name, func(b *testing.B) {
			accepted := make(chan struct{}, idleConns)
			srv := benchServer(b, raw, func(ctx context.Context, send func([]byte) error, recv func() error) {
				accepted <- struct{}{}
				recv()
			})
			addr := strings.TrimPrefix(srv.URL, "http://")
			heap0, stack0 := liveMemory()
			conns := make([]net.Conn, 0, idleConns)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range idleConns {
				c, err := bareDial(addr)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			for range idleConns {
				<-accepted
			}
			heap1, stack1 := liveMemory()
			b.ReportMetric(float64(heap1-heap0)/idleConns, "heap-B/conn")
			b.ReportMetric(float64(stack1-stack0)/idleConns, "stack-B/conn")
		})
	}
}

// liveMemory returns the live heap and the goroutine stacks in use.
func liveMemory() (heap, stack int64) {
	runtime.GC()
	runtime.GC() // the first cycle may leave finalizers and sweeping behind
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// bareDial completes a WebSocket handshake on a TCP connection and keeps
// nothing else: no buffer, no goroutine.
func bareDial(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	var resp []byte
	var buf [512]byte
	for err == nil && !bytes.Contains(resp, []byte("\r\n\r\n")) {
		var n int
		n, err = c.Read(buf[:])
		resp = append(resp, buf[:n]...)
	}
	if err == nil && !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
		err = &net.OpError{Op: "handshake", Net: "tcp", Err: errNot101(resp)}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

type errNot101 []byte

func (e errNot101) Error() string { return "no 101 response: " + string(e) }

// BenchmarkEchoRoundTrip: 16 clients each send a 64-byte message and
// wait for its echo, through wsroute next to raw coder/websocket, the
// shape of bench/'s echo workload in one process. cpu-ns/op is the
// process's CPU time per round trip (clients included), steadier than
// wall time on a shared machine; the read path's buffers (readbuf.go)
// must not raise it, nor allocs/op.
func BenchmarkEchoRoundTrip(b *testing.B) {
	const clients = 16
	for _, raw := range []bool{false, true} {
		name := "wsroute"
		if raw {
			name = "coder"
		}
		b.Run(name, func(b *testing.B) {
			srv := benchServer(b, raw, func(ctx context.Context, send func([]byte) error, recv func() error) {
				for recv() == nil && send(payload) == nil {
				}
			})
			cs := make([]*websocket.Conn, clients)
			for i := range cs {
				cs[i] = dial(b, srv, "/", nil)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := testutil.CPUTime()
			for i, c := range cs {
				n := b.N / clients
				if i < b.N%clients {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if err := c.Write(ctx, websocket.MessageBinary, payload); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := c.Read(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(testutil.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.StopTimer()
			for _, c := range cs {
				c.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}
