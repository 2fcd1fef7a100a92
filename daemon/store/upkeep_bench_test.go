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
// Rounds of 4,000 records (5.5 MiB); MESHD_BENCH_N sets the total
// (default 20,000: 5 rounds). For docs/performance.md:
//
//	MESHD_BENCH_N=200000 go test -run '^$' -bench StoreSizeLongRun -benchtime=1x ./daemon/store
//	MESHD_BENCH_N=1000000 go test -run '^$' -bench StoreSizeLongRun -benchtime=1x ./daemon/store
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

// longRun writes n custody records in rounds of 4,000, deleting each
// round's records three rounds later (at most 16 MiB live), and returns
// the peak and final on-disk sizes.
func longRun(tb testing.TB, s *Store, n int, gc bool) (peak, end int64, rewrites int) {
	const keep = 3
	per := min(n, 4000)
	rounds := n / per
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
