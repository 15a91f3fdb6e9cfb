package wsroute

import (
	"testing"
	"unsafe"
)

// TestGuardedConnSizeClass: every accepted connection allocates one
// guardedConn (its netConn inside), for its whole life. At 416 bytes it
// fits the allocator's 416-byte size class; one byte more costs every
// connection 32 (the next class is 448). A new field should take a gap
// (bools and 4-byte fields sit together so that there is no padding) or
// raise this bound knowingly.
func TestGuardedConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(guardedConn{}); n > 416 {
		t.Errorf("guardedConn is %d bytes, over the 416-byte size class", n)
	}
}
