package chaos

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// usage is what the process holds at one moment.
type usage struct {
	goroutines int
	heap       int64 // live heap objects after a GC, or heap objects in use (samples)
	fds        int
	rss        int64 // resident set size, from /proc/self/status
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, heap %s, %d fds, RSS %s", u.goroutines, mib(u.heap), u.fds, mib(u.rss))
}

// measure returns the process's usage after two garbage collections
// (sync.Pool contents survive one), so heap is the live heap.
func measure() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), heap: int64(ms.HeapAlloc), fds: countFDs(), rss: rss()}
}

// countFDs counts this process's open file descriptors.
func countFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // the directory itself
}

// rss reads VmRSS from /proc/self/status, in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// sampler records the peak usage while a test runs, without stopping
// the world: runtime/metrics for goroutines and heap, /proc for the
// rest.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak usage
}

func startSampler(every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	// The sampler's goroutine ends when Stop is called.
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			metrics.Read(samples)
			u := usage{
				goroutines: int(samples[0].Value.Uint64()) - 1, // not the sampler
				heap:       int64(samples[1].Value.Uint64()),
				rss:        rss(),
			}
			if i%10 == 0 {
				// Reading /proc/self/fd costs about a millisecond per
				// thousand descriptors: not at every tick.
				u.fds = countFDs()
			}
			s.mu.Lock()
			s.peak.goroutines = max(s.peak.goroutines, u.goroutines)
			s.peak.heap = max(s.peak.heap, u.heap)
			s.peak.fds = max(s.peak.fds, u.fds)
			s.peak.rss = max(s.peak.rss, u.rss)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampler and returns the peak.
func (s *sampler) Stop() usage {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// settle waits until goroutines and descriptors are back to base and
// the live heap is within heapSlack of it, and returns the last
// measurement; it fails the test if they are not within d. Goroutines
// end and sockets close a little after the code that ended them
// returns, hence the loop.
//
// heapSlack should include gSlack of the peak: the runtime never frees
// a goroutine's descriptor, so the heap keeps about 480 bytes for every
// goroutine that ever ran at once.
func settle(t testing.TB, base usage, heapSlack int64, d time.Duration) usage {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		u := measure()
		if u.goroutines <= base.goroutines && u.fds <= base.fds && u.heap <= base.heap+heapSlack {
			return u
		}
		if time.Now().After(deadline) {
			if p := os.Getenv("CHAOS_HEAPPROFILE"); p != "" {
				f, _ := os.Create(p)
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("resources did not return to baseline within %v:\n  base  %v\n  final %v\ngoroutines:\n%s", d, base, u, clip(string(buf), 20000))
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gSlack is what the heap keeps after a peak of goroutines: their
// descriptors (runtime.g, about 480 bytes), which the runtime reuses
// but never frees.
func gSlack(peak usage) int64 { return 512 * int64(peak.goroutines) }
