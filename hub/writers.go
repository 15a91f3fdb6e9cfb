package hub

import "sync"

// writeQueue is the line of members with something to write, and the
// hub writers that serve it. A writer is a goroutine that exists only
// while the line is not empty: the first member scheduled starts one, up
// to maxWriters (GOMAXPROCS when the hub was made), and each ends when it
// finds the line empty. A broadcast to a thousand idle members therefore
// wakes a couple of goroutines, not a thousand, and a writer writes each
// member's whole queue in one write, so a burst still coalesces. A
// member whose socket cannot take its queue at once leaves the line for
// a goroutine of its own (member.run), which waits for it.
type writeQueue struct {
	mu      sync.Mutex
	line    []*member // from head: the members waiting for a writer
	head    int
	writers int
}

// keepLine is the largest line capacity the hub keeps when the line
// empties (a 5,000-member room leaves 40 KB otherwise).
const keepLine = 1024

// schedule puts m, whose running flag its caller set, in the line, and
// starts a writer if fewer than maxWriters are running. m is in the line
// at most once: only the caller that set running schedules it.
func (h *Hub) schedule(m *member) {
	w := &h.wq
	w.mu.Lock()
	w.line = append(w.line, m)
	start := w.writers < h.maxWriters
	if start {
		w.writers++
		h.writers.Add(1)
	}
	w.mu.Unlock()
	if start {
		go h.writeLoop()
	}
}

// writeLoop is a hub writer: it gives each member in the line a turn
// (member.drain) until the line is empty.
func (h *Hub) writeLoop() {
	defer h.writers.Done()
	w := &h.wq
	for {
		w.mu.Lock()
		if w.head == len(w.line) {
			w.writers--
			if cap(w.line) > keepLine {
				w.line = nil
			} else {
				w.line = w.line[:0]
			}
			w.head = 0
			w.mu.Unlock()
			return
		}
		m := w.line[w.head]
		w.line[w.head] = nil
		w.head++
		w.mu.Unlock()
		m.drain()
	}
}
