//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime returns the CPU time (user and system) the process has used so
// far. Benchmarks report it per operation next to the wall time: on a
// machine shared with other work, the process's own CPU time moves far
// less than the wall clock, so small overheads can be told from noise.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
