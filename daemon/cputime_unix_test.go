//go:build unix

package daemon

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process used so far,
// for benchmarks that report CPU per operation; ok is false where the
// platform cannot tell.
func processCPU() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
