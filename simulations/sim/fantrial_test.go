package sim

import (
	"testing"
	"time"
)

// runTrial asks a fresh fanout's trial about frames frames, each frame one
// event that costs fanNs of clock time when it may go through the fan-out
// and soloNs when not, and returns the fanout and the ways, frame by frame.
func runTrial(frames int, fanNs, soloNs time.Duration) (*fanout, []bool) {
	var events uint64
	clock := time.Unix(0, 0)
	f := &fanout{events: &events}
	f.trial.clock = func() time.Time { return clock }
	ways := make([]bool, frames)
	for i := range ways {
		ways[i] = f.trial.fan(f)
		events++
		if ways[i] {
			clock = clock.Add(fanNs)
		} else {
			clock = clock.Add(soloNs)
		}
	}
	return f, ways
}

func TestFanTrialPhases(t *testing.T) {
	_, ways := runTrial(4*fanTrialFrames+fanKeepFrames, 10, 20)
	for i, want := range []bool{true, false, false, true} {
		for k := i * fanTrialFrames; k < (i+1)*fanTrialFrames; k++ {
			if ways[k] != want {
				t.Fatalf("frame %d of trial window %d: fan-out %v, want %v", k, i, ways[k], want)
			}
		}
	}
}

func TestFanTrialKeepsTheFaster(t *testing.T) {
	cycle := 4*fanTrialFrames + fanKeepFrames
	for _, c := range []struct {
		name          string
		fanNs, soloNs time.Duration
		want          bool
	}{
		{"fan-out faster", 80, 100, true},
		{"fan-out slower", 120, 100, false},
		{"fan-out within the margin", 99, 100, false},
	} {
		f, ways := runTrial(2*cycle, c.fanNs, c.soloNs)
		for k := 4 * fanTrialFrames; k < cycle; k++ {
			if ways[k] != c.want {
				t.Fatalf("%s: frame %d after the trial: fan-out %v, want %v", c.name, k, ways[k], c.want)
			}
		}
		if f.stats.trials != 2 || (f.stats.won == 2) != c.want || (f.stats.won == 0) == c.want {
			t.Fatalf("%s: won %d of %d trials", c.name, f.stats.won, f.stats.trials)
		}
	}
}
