package store

import (
	"fmt"
	"testing"

	"meshd.dev/meshd/routing"
)

// Store size over a long run (docs/performance.md): rounds of custody
// records written and, a few rounds later, deleted (delivered or expired),
// as a node with a steady flow of messages does; the on-disk size at the
// end, with the daemon's upkeep (GC every few rounds) and without.
// MESHD_BENCH_N sets the records per round (default 20,000 spread over 50
// rounds):
//
//	go test -run '^$' -bench StoreSizeLongRun -benchtime=1x ./daemon/store
func BenchmarkStoreSizeLongRun(b *testing.B) {
	n := benchN(b)
	for _, gc := range []bool{false, true} {
		b.Run(fmt.Sprintf("gc=%t", gc), func(b *testing.B) {
			for b.Loop() {
				s, err := Open(b.TempDir(), quiet)
				if err != nil {
					b.Fatal(err)
				}
				peak, end, rewrites := longRun(b, s, n, gc)
				b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
				b.ReportMetric(float64(end)/(1<<20), "end-MiB")
				b.ReportMetric(float64(rewrites), "vlog-rewrites")
				s.Close()
			}
		})
	}
}

// longRun writes n custody records over 50 rounds, deleting each round's
// records three rounds later, and returns the peak and final on-disk
// sizes.
func longRun(tb testing.TB, s *Store, n int, gc bool) (peak, end int64, rewrites int) {
	const rounds, keep = 50, 3
	per := max(n/rounds, 1)
	val := benchValue()
	key := func(r, i int) string { return fmt.Sprintf("c/%016x%016x", r, i) }
	for r := 0; r < rounds+keep; r++ {
		var rd routing.Ready
		if r < rounds {
			for i := 0; i < per; i++ {
				rd.Persist = append(rd.Persist, routing.Record{Key: key(r, i), Value: val})
			}
		}
		if r >= keep {
			for i := 0; i < per; i++ {
				rd.Deletes = append(rd.Deletes, key(r-keep, i))
			}
		}
		if _, err := s.Apply(&rd); err != nil {
			tb.Fatal(err)
		}
		if gc && r%5 == 4 {
			res, err := s.GC()
			if err != nil {
				tb.Fatal(err)
			}
			rewrites += res.Rewrites
		}
		size, err := s.DiskUsage()
		if err != nil {
			tb.Fatal(err)
		}
		peak = max(peak, size)
	}
	end, err := s.DiskUsage()
	if err != nil {
		tb.Fatal(err)
	}
	return peak, end, rewrites
}
