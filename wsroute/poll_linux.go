package wsroute

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// The detached readers' poller (Linux). An idle detached connection has
// no goroutine: its socket is registered in one process-wide epoll set,
// and one goroutine, the poller, waits on that set for all of them. When
// a socket becomes readable (a pong, a message, the peer's close or its
// disappearance), the poller starts a goroutine that reads it as the
// detached reader always does (detach.go), and that goroutine re-arms
// the registration when the connection is idle again, and returns.
//
// Each registration is EPOLLONESHOT: it reports once, then stays in the
// set, disabled, until the reader re-arms it with EPOLL_CTL_MOD (which
// reports at once if bytes came meanwhile, so no wakeup is lost). So one
// goroutine at most reads a connection, and a connection being read
// costs the poller nothing: no event for each of its messages, as an
// edge-triggered registration would bring (and a state machine to tell
// them from the wakeup of an idle connection). The price is one
// epoll_ctl per move to idle, at most once per ping interval for a
// quiet connection; a talking one stays on its reader (detach.go).
//
// An event names its registration by slot and generation, not by file
// descriptor: a descriptor closed and reused by another connection, or
// an event read just before its registration ended, must never wake the
// wrong connection. A connection closed while armed gets no event (the
// kernel drops a closed descriptor from the set), so netConn.Close ends
// its registration and starts its reader itself (pollReg.close).
//
// The poller runs only while registrations exist: the first starts it,
// and it returns pollGrace after the last one ends (an eventfd wakes it
// to notice), so a program or test with no detached connection left has
// no goroutine of wsroute's.

// pollEvents is what a registration waits for. EPOLLHUP and EPOLLERR are
// always reported.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// pollGrace is how long the poller outlives the last registration, so
// that a connection that comes right after does not start a new one.
const pollGrace = 20 * time.Millisecond

// pollWakeSlot is the eventfd's slot in epoll_event data.
const pollWakeSlot = ^uint32(0)

// poller is the process-wide epoll set and its registrations, by slot.
var poller struct {
	mu      sync.Mutex
	ready   bool  // epfd and evfd are open, for the life of the process
	failed  error // why they could not be
	epfd    int
	evfd    int        // the eventfd that wakes the loop
	slots   []pollSlot // by slot number
	free    []uint32   // free slots
	n       int        // registrations
	running bool       // a loop goroutine is serving the set
}

// pollSlot holds a registration, and counts the registrations it has
// held, so that an event of an ended one is told from its successor's.
type pollSlot struct {
	r   *pollReg // nil: free
	gen uint32
}

// pollReg is a detached connection's registration in the epoll set. Its
// state changes under mu: armed (the reader has returned, the poller
// will start the next one), closed (the socket is closing: never arm
// again).
type pollReg struct {
	mu     sync.Mutex
	slot   uint32
	gen    uint32
	added  bool // in the epoll set
	armed  bool
	closed bool
	c      *Conn
	d      *detached
}

// pollSupported reports whether this system has the poller.
const pollSupported = true

// pollInit creates the epoll set and its eventfd, once. Under poller.mu.
func pollInit() error {
	if poller.ready || poller.failed != nil {
		return poller.failed
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		poller.failed = os.NewSyscallError("epoll_create1", err)
		return poller.failed
	}
	ev, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(ep)
		poller.failed = os.NewSyscallError("eventfd2", errno)
		return poller.failed
	}
	e := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setPollData(&e, pollWakeSlot, 0)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(ev), &e); err != nil {
		syscall.Close(ep)
		syscall.Close(int(ev))
		poller.failed = os.NewSyscallError("epoll_ctl", err)
		return poller.failed
	}
	poller.epfd, poller.evfd, poller.ready = ep, int(ev), true
	return nil
}

// setPollData puts slot and gen in e's 64 bits of user data (which
// syscall.EpollEvent calls Fd and Pad).
func setPollData(e *syscall.EpollEvent, slot, gen uint32) {
	e.Fd, e.Pad = int32(slot), int32(gen)
}

func pollData(e *syscall.EpollEvent) (slot, gen uint32) {
	return uint32(e.Fd), uint32(e.Pad)
}

// newPollReg takes a slot for c, starting the loop if it is not running.
// It fails only when the system refuses an epoll set (then detached
// readers wait on their goroutines, as on other systems).
func newPollReg(c *Conn, d *detached) (*pollReg, error) {
	poller.mu.Lock()
	defer poller.mu.Unlock()
	if err := pollInit(); err != nil {
		return nil, err
	}
	r := &pollReg{c: c, d: d}
	if k := len(poller.free); k > 0 {
		r.slot = poller.free[k-1]
		poller.free = poller.free[:k-1]
	} else {
		r.slot = uint32(len(poller.slots))
		poller.slots = append(poller.slots, pollSlot{})
	}
	s := &poller.slots[r.slot]
	s.gen++
	s.r, r.gen = r, s.gen
	poller.n++
	if !poller.running {
		poller.running = true
		go pollLoop()
	}
	return r, nil
}

// release frees r's slot. Under r.mu; takes poller.mu.
func (r *pollReg) release() {
	poller.mu.Lock()
	defer poller.mu.Unlock()
	if poller.slots[r.slot].r != r {
		return
	}
	poller.slots[r.slot].r = nil
	poller.free = append(poller.free, r.slot)
	poller.n--
	if poller.n == 0 {
		// The loop may be waiting with no timeout: wake it to see
		// the set empty.
		// (An eventfd adds the 8-byte number written: any but 0
		// will do, whatever the byte order.)
		syscall.Write(poller.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// arm registers the socket (or re-enables its registration) so that the
// poller starts the reader when it becomes readable. It reports false,
// arming nothing, once the socket is closing (or cannot be polled): the
// caller then reads it on its own goroutine, where the read fails at
// once.
func (r *pollReg) arm() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	// netConn.Close sets closed before it looks for a registration to
	// end (close); rest made r findable before arming it. So either
	// Close ends r, or arm sees closed and does.
	if r.c.nc.closed.Load() {
		r.end()
		return false
	}
	op := syscall.EPOLL_CTL_MOD
	if !r.added {
		op = syscall.EPOLL_CTL_ADD
	}
	e := syscall.EpollEvent{Events: pollEvents}
	setPollData(&e, r.slot, r.gen)
	var err error
	// Control keeps the descriptor open (not closed and reused) while
	// epoll_ctl runs, and fails if it is closed already.
	if cerr := r.c.guard.sock.rc.Control(func(fd uintptr) {
		err = syscall.EpollCtl(poller.epfd, op, int(fd), &e)
	}); cerr != nil {
		r.end()
		return false
	}
	if err != nil {
		// The system refuses (ENOSPC: max_user_watches, ENOMEM): the
		// caller's goroutine waits instead, and the next rest tries
		// again.
		return false
	}
	r.added = true
	r.armed = true
	return true
}

// close ends the registration as the socket closes; netConn.Close calls
// it before closing the socket. It reports whether r was armed: then no
// reader is running, and the caller must start one once the socket is
// closed, to end the connection (the kernel reports nothing for a
// closed descriptor).
func (r *pollReg) close() (wasArmed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	wasArmed, r.armed = r.armed, false
	r.end()
	return wasArmed
}

// end takes r out of the set, for good, and frees its slot. Under r.mu.
func (r *pollReg) end() {
	r.closed = true
	if r.added {
		// Before the socket closes: a registration outlives its
		// descriptor if it was duplicated. A closed one is out already.
		r.c.guard.sock.rc.Control(func(fd uintptr) {
			syscall.EpollCtl(poller.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	r.release()
}

// fire is the poller's: r's socket is readable (or closed by the peer).
func (r *pollReg) fire() {
	r.mu.Lock()
	armed := r.armed
	r.armed = false
	r.mu.Unlock()
	if armed {
		go r.c.readPolled(r)
	}
}

// pollLookup returns the registration an event names, nil if it has
// ended.
func pollLookup(slot, gen uint32) *pollReg {
	poller.mu.Lock()
	defer poller.mu.Unlock()
	if int(slot) < len(poller.slots) && poller.slots[slot].gen == gen {
		return poller.slots[slot].r
	}
	return nil
}

// pollLoop serves the epoll set until it has been empty for pollGrace.
func pollLoop() {
	var events [128]syscall.EpollEvent
	for {
		poller.mu.Lock()
		timeout := -1
		if poller.n == 0 {
			timeout = int(pollGrace / time.Millisecond)
		}
		ep := poller.epfd
		poller.mu.Unlock()
		n, err := syscall.EpollWait(ep, events[:], timeout)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Only a bad set or buffer fails epoll_wait: neither can
			// happen here.
			panic(os.NewSyscallError("epoll_wait", err))
		}
		if n == 0 {
			poller.mu.Lock()
			if poller.n == 0 {
				poller.running = false
				poller.mu.Unlock()
				return
			}
			poller.mu.Unlock()
			continue
		}
		for i := range events[:n] {
			slot, gen := pollData(&events[i])
			if slot == pollWakeSlot {
				var b [8]byte
				syscall.Read(poller.evfd, b[:])
				continue
			}
			if r := pollLookup(slot, gen); r != nil {
				r.fire()
			}
		}
	}
}
