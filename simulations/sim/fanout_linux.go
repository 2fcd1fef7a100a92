package sim

import "syscall"

// osYield gives the CPU to another thread that waits for it, if any: a
// goroutine that polls for the other worker must not keep that worker,
// descheduled on a busy machine, from running.
func osYield() { _, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
