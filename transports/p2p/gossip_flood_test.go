package p2p

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFloodCountsDecayAndBound: a count decays to 1 % in gossipFloodDecay,
// and the table never holds more than gossipMaxLimiters peers, dropping
// the smallest count first, so a heavy flooder keeps its count however
// many new peers flood a little.
func TestFloodCountsDecayAndBound(t *testing.T) {
	f := newFloodCounts()
	t0 := time.Unix(1_000_000, 0)
	heavy := peer.ID("heavy")
	for range 100 {
		f.add(heavy, t0)
	}
	if got := f.get(heavy, t0.Add(gossipFloodDecay)); math.Abs(got-1) > 1e-6 {
		t.Errorf("count after %v: %v, want 1 (1 %% of 100)", gossipFloodDecay, got)
	}
	for i := range 3 * gossipMaxLimiters {
		f.add(peer.ID(fmt.Sprint("light ", i)), t0.Add(time.Second))
		if len(f.m) > gossipMaxLimiters {
			t.Fatalf("%d counts held, bound %d", len(f.m), gossipMaxLimiters)
		}
	}
	if got := f.get(heavy, t0); got != 100 {
		t.Errorf("heavy flooder's count %v after many light ones, want 100", got)
	}
}
