package store

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// Store-and-forward goal (docs/performance.md): enqueue and drain messages in custody through
// Apply against raw badger batched writes of the same bytes (goal >= 0.5x).
// MESHD_BENCH_N sets the number of records per run (default 20,000); for
// the 1M figure:
//
//	MESHD_BENCH_N=1000000 go test -run '^$' -bench 'Custody|Raw' -benchtime=1x ./daemon/store

// custodyValueSize is a custody record's size as the engine produces it
// for a typical message (header, destination, times and an envelope).
const custodyValueSize = 1400

func benchN(b *testing.B) int {
	if v := os.Getenv("MESHD_BENCH_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MESHD_BENCH_N=%q", v)
		}
		return n
	}
	return 20_000
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("c/%032x", i)
	}
	return keys
}

func benchValue() []byte {
	v := make([]byte, custodyValueSize)
	for i := range v {
		v[i] = byte(i * 7)
	}
	return v
}

func BenchmarkCustodyEnqueueDrain(b *testing.B) {
	n := benchN(b)
	keys, val := benchKeys(n), benchValue()
	for _, per := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("per-apply=%d", per), func(b *testing.B) {
			b.SetBytes(int64(n * (len(keys[0]) + len(val))))
			for b.Loop() {
				b.StopTimer()
				s, err := Open(b.TempDir(), quiet)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for i := 0; i < n; i += per {
					rd := &routing.Ready{}
					for _, k := range keys[i:min(i+per, n)] {
						rd.Persist = append(rd.Persist, routing.Record{Key: k, Value: val})
					}
					if _, err := s.Apply(rd); err != nil {
						b.Fatal(err)
					}
				}
				for i := 0; i < n; i += per {
					if _, err := s.Apply(&routing.Ready{Deletes: keys[i:min(i+per, n)]}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRawBadgerBatch writes and deletes the same keys and values with
// badger WriteBatches, on the store's badger options (SyncWrites included),
// flushing once per phase: the ceiling for custody through Apply.
func BenchmarkRawBadgerBatch(b *testing.B) {
	n := benchN(b)
	keys, val := benchKeys(n), benchValue()
	b.SetBytes(int64(n * (len(keys[0]) + len(val))))
	for b.Loop() {
		b.StopTimer()
		c := config{memTableSize: 8 << 20, logger: quietLogger}
		db, err := badger.Open(badgerOptions(b.TempDir(), &c))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		wb := db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Set(engineKey(k), val); err != nil {
				b.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			b.Fatal(err)
		}
		wb = db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(engineKey(k)); err != nil {
				b.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
