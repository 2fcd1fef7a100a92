//go:build linux

package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Linux madvise advice values (not all in package syscall).
const (
	madvHugePage = 14 // MADV_HUGEPAGE
	madvCollapse = 25 // MADV_COLLAPSE, Linux 6.1
	hugePageSize = 2 << 20
)

// startHugePages asks the kernel to back the Go heap with 2 MB pages, now
// and every 2 s until stop is called. A 10,000-node run touches about a
// gigabyte of engines, radio state and duty-cycle ledgers in no order
// (each received frame wakes another node's engine); with 4 KB pages
// nearly every such touch also misses the TLB and walks the page tables,
// and the engines' first touches were a tenth of the CPU profile.
// MADV_HUGEPAGE lets later page faults in the heap's mappings take huge
// pages (THP mode "madvise", the usual default), MADV_COLLAPSE (Linux 6.1)
// turns the pages already touched into huge ones. Errors are ignored: an
// older kernel keeps small pages; with THP mode "never" (or no THP) it asks
// for nothing (thpNever). Only the page size changes, never a result.
func startHugePages() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		collapsed := make(map[uintptr]bool) // 2 MB chunks asked for once
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				hugePagesPass(collapsed)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// thpEnabled is the system's transparent huge page mode (tests replace
// it).
var thpEnabled = "/sys/kernel/mm/transparent_hugepage/enabled"

// thpNever reports whether the administrator turned transparent huge pages
// off ("[never]"), or the kernel has none (no file). MADV_COLLAPSE does
// not look at that setting (it is independent of the sysfs THP settings),
// so without this check meshsim would take huge pages where the system
// says never.
func thpNever() bool {
	b, err := os.ReadFile(thpEnabled)
	return err != nil || bytes.Contains(b, []byte("[never]"))
}

// madviseFn is madvise (tests count the calls).
var madviseFn = madvise

// hugePagesPass advises every private anonymous read-write mapping of at
// least 2 MB, and collapses the chunks of it not collapsed before; nothing
// where the system's THP mode is never.
func hugePagesPass(collapsed map[uintptr]bool) {
	if thpNever() {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := anonRange(sc.Bytes())
		if !ok {
			continue
		}
		lo = (lo + hugePageSize - 1) &^ (hugePageSize - 1)
		hi &^= hugePageSize - 1
		if hi <= lo {
			continue
		}
		madviseFn(lo, hi-lo, madvHugePage)
		for a := lo; a < hi; {
			if collapsed[a] {
				a += hugePageSize
				continue
			}
			b := a
			for b < hi && !collapsed[b] {
				collapsed[b] = true
				b += hugePageSize
			}
			madviseFn(a, b-a, madvCollapse)
			a = b
		}
	}
}

// anonRange parses a line of /proc/self/maps and returns its range if it
// is a private anonymous read-write mapping (the Go heap's are, named or
// not; files and stacks are not).
func anonRange(line []byte) (lo, hi uintptr, ok bool) {
	f := bytes.Fields(line)
	if len(f) < 5 || !bytes.Equal(f[1], []byte("rw-p")) || !bytes.Equal(f[4], []byte("0")) {
		return 0, 0, false
	}
	if len(f) > 5 && !bytes.HasPrefix(f[5], []byte("[anon")) {
		return 0, 0, false // [stack], [heap] of C code, [vdso] and the like
	}
	a, b, found := bytes.Cut(f[0], []byte("-"))
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(string(a), 16, 64)
	y, err2 := strconv.ParseUint(string(b), 16, 64)
	if err1 != nil || err2 != nil || y <= x {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}

func madvise(addr, n uintptr, advice int) {
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice))
}
