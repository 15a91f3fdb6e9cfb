// Package testutil holds the assertions and helpers that nexio's own tests
// share, so that each test package does not carry a copy. It is internal:
// users test their handlers with wsroute/wstest.
package testutil

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// Check fails the test now with the formatted message unless ok.
func Check(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

// NoErr fails the test now if err is not nil.
func NoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// Equal fails the test now unless got == want.
func Equal[T comparable](t testing.TB, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// EventuallyTimeout is how long Eventually waits for its condition. It is
// generous on purpose: the condition is polled, so a passing test pays
// only the time its condition takes, and a loaded CI machine does not
// turn a slow pass into a failure.
const EventuallyTimeout = 10 * time.Second

// Eventually polls cond until it is true, and fails the test with the
// formatted message if it is still false after EventuallyTimeout.
func Eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	EventuallyWithin(t, EventuallyTimeout, cond, format, args...)
}

// EventuallyWithin is Eventually with its own bound.
func EventuallyWithin(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Context returns a context that ends after d or when the test ends,
// whichever is first, so that no test can hang on a socket forever.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// CtxTimeout bounds the context that Ctx returns.
const CtxTimeout = 30 * time.Second

// Ctx returns a context that ends after CtxTimeout or when the test ends.
func Ctx(t testing.TB) context.Context {
	t.Helper()
	return Context(t, CtxTimeout)
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on, for
// a server a test starts (and may restart) itself. It is chosen below
// Linux's default ephemeral range (32768 and up), where the kernel never
// puts the local end of an outgoing connection: a port from that range
// that was free a moment ago can be taken by any client connecting
// elsewhere before the server binds it, or between its restarts, and
// one left in TIME_WAIT by such a connection can refuse the bind. The
// port plus 10000 (where Redis Cluster puts its bus) is below that
// range too.
func FreePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 10000, 22767
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken
		}
		l.Close()
		return port
	}
	t.Fatalf("testutil: no free port in %d-%d after 100 tries", lo, hi)
	return 0
}
