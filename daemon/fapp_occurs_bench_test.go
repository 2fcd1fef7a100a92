package daemon

import (
	"context"
	"testing"
	"time"
)

// BenchmarkFAPPOccurs: what one Occurs call (Book asks it twice for every
// reservation of the slot at another start, in every decision and every
// status change) costs on the test offer's 21-week place, for a week
// offered now and for a week rolled past.
func BenchmarkFAPPOccurs(b *testing.B) {
	clk := &testClock{}
	is := newIssuer(b)
	n, stop := startClocked(b, fappConfig(b, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(b, ctx, n, is, clk)
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	place := f.pub.Slots()[1]
	for _, c := range []struct {
		name  string
		start time.Time
	}{{"last-week", place.Occurrence(place.Occurrences() - 1)}, {"not-a-week", place.Start.Add(time.Hour)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				f.occursLocked(place.ID, c.start)
			}
		})
	}
}
