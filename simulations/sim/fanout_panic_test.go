package sim

import (
	crand "crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
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

// TestFanOutEmptyFrame: a frame job whose frame is empty (nil once
// copied) still steps the engine with a FrameReceived, as one worker
// would, not with a missing input.
func TestFanOutEmptyFrame(t *testing.T) {
	id, err := protocol.NewIdentity(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	eng, err := routing.New(routing.Config{Identity: id, Rand: crand.Reader}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: loraLinkID, Kind: routing.LinkLoRa}}); err != nil {
		t.Fatal(err)
	}
	f := newFanout(new(uint64))
	defer f.stop()
	f.begin(now)
	k := f.postFrame(&node{eng: eng}, routing.FrameReceived{Link: loraLinkID, Frame: nil, SNR: 3, HasSNR: true}, true)
	f.execute(k)
	j := f.wait(k)
	if j.err == nil || eng.Counters().FramesIn != 1 {
		t.Fatalf("empty frame: err %v, FramesIn %d; want the engine's malformed-frame error and 1 frame in", j.err, eng.Counters().FramesIn)
	}
	f.end()
}
