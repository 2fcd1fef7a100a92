package sim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// TestFanOutHelperPanic: an engine Step that panics on the helper
// goroutine panics on the run's goroutine, as it would with one worker
// (where Run's caller sees it, its deferred calls run and a recover can
// catch it), instead of ending the process from a goroutine nobody can
// recover; and the helper still stops.
func TestFanOutHelperPanic(t *testing.T) {
	f := newFanout(new(uint64))
	f.begin(time.Unix(0, 0))
	k := f.post(&node{}, routing.TxDone{}, false) // no engine: Step panics
	// The helper takes the job (the run's goroutine does not claim it).
	for f.jobs[k].state.Load() == jobPosted {
		runtime.Gosched()
	}
	p := func() (p any) {
		defer func() { p = recover() }()
		f.wait(k)
		return nil
	}()
	if p == nil || !strings.Contains(fmt.Sprint(p), "nil pointer") {
		t.Fatalf("wait on a job whose Step panicked: %v, want the Step's panic", p)
	}
	f.stop()
}
