//go:build !linux

package sim

import "runtime"

// osYield gives way to other goroutines (other systems: no portable
// thread yield without cgo).
func osYield() { runtime.Gosched() }
