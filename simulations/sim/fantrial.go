package sim

import "time"

// Whether the second core pays is the machine's business, not the run's:
// on a virtual machine whose two cores are one physical core's two
// hardware threads, a helper that polls or runs Steps slows the run's
// goroutine (the simulator waits on memory most of the time, and the
// threads share the core's memory pipeline) by about as much as it takes
// off it. So the run measures both ways in turn and keeps the faster:
// fanTrialFrames frames with the fan-out, twice as many without, as many
// with it again (fan, solo, solo, fan: a trend in the workload weighs on
// both alike), then fanKeepFrames frames the faster way, and again. The
// fan-out must be fanMargin faster to be kept, so that a run with two
// workers is not slower than with one. Timing decides which frames go
// through the fan-out, never the results (fanout.go).
const (
	fanTrialFrames = 4096
	fanKeepFrames  = 16 * fanTrialFrames
	fanMargin      = 0.02
)

// fanTrial is the state of the comparison.
type fanTrial struct {
	frames   uint64 // frames asked about so far
	next     uint64 // where the current phase ends
	phase    int    // 0-3: the trial's windows (fan, solo, solo, fan); 4: keeping
	on       bool   // the way of the current phase
	start    time.Time
	startEv  uint64
	cost     [2]float64       // wall ns per event summed over the trial's windows: solo, fan
	decision bool             // the way kept in phase 4
	clock    func() time.Time // time.Now; tests set it
}

// fan reports whether the next frame may go through the fan-out, moving
// to the next phase when the current one is over.
func (t *fanTrial) fan(f *fanout) bool {
	t.frames++
	if t.frames >= t.next {
		t.advance(f)
	}
	return t.on
}

func (t *fanTrial) advance(f *fanout) {
	clock := t.clock
	if clock == nil {
		clock = time.Now
	}
	now, ev := clock(), *f.events
	if t.phase < 4 && t.next > 0 {
		if d := ev - t.startEv; d > 0 {
			t.cost[b2i(t.on)] += float64(now.Sub(t.start)) / float64(d)
		}
	}
	t.phase = (t.phase + 1) % 5
	if t.next == 0 {
		t.phase = 0
	}
	switch t.phase {
	case 0:
		t.cost = [2]float64{}
		t.on = true
	case 1, 2:
		t.on = false
	case 3:
		t.on = true
	case 4:
		t.decision = t.cost[1] < (1-fanMargin)*t.cost[0]
		f.stats.trials++
		if t.decision {
			f.stats.won++
		}
		t.on = t.decision
	}
	t.next = t.frames + fanTrialFrames
	if t.phase == 4 {
		t.next = t.frames + fanKeepFrames
	}
	t.start, t.startEv = now, ev
	// A set-aside helper (fanStall, fanIdle) gets a new chance in each
	// phase: the trial, not the set-aside, decides over longer spells.
	f.solo = 0
	f.win = fanStats{frames: f.stats.frames, jobs: f.stats.jobs, helper: f.helped.Load()}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FanOutTrials reports, for a run with two workers, how many times the
// run compared the fan-out with the run's goroutine alone, and how many
// of those the fan-out won (fanTrial). Timing decides both.
func (s *Sim) FanOutTrials() (trials, won uint64) { return s.fanStats.trials, s.fanStats.won }
