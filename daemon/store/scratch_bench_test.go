package store

import (
	"errors"
	"fmt"
	"testing"

	"meshd.dev/meshd/routing"
)

// BenchmarkUnitsAfterBigBatch: the CPU of building a typical batch's units
// (36 deliveries with their delivered records, 36 custody deletes) in the
// store's scratch space, before and after one batch of 20,000 deletes
// grew it.
func BenchmarkUnitsAfterBigBatch(b *testing.B) {
	typical := &routing.Ready{}
	for i := range 36 {
		d := delivery(i)
		d.Broadcast = false
		typical.Deliveries = append(typical.Deliveries, d)
		typical.Persist = append(typical.Persist, routing.Record{Key: "d/" + idHex(d), Value: make([]byte, 60)})
		typical.Deletes = append(typical.Deletes, fmt.Sprintf("c/%032x", i))
	}
	big := &routing.Ready{}
	for i := range 20000 {
		big.Deletes = append(big.Deletes, fmt.Sprintf("c/%032x", i))
	}
	for _, grown := range []bool{false, true} {
		b.Run(fmt.Sprintf("grown=%v", grown), func(b *testing.B) {
			s := openT(b, b.TempDir())
			s.mu.Lock()
			defer s.mu.Unlock()
			if grown {
				if _, _, err := s.units(big); err != nil {
					b.Fatal(err)
				}
				s.unitScratch.release()
			}
			for b.Loop() {
				if _, _, err := s.units(typical); err != nil {
					b.Fatal(err)
				}
				s.unitScratch.release()
			}
		})
	}
}

// TestScratchDropsReferences: once ApplyAsync returned, the scratch space
// it built the batch in refers to nothing (the caller's values, the
// keys): after a big batch, after a smaller one, and after a batch split
// over several records.
func TestScratchDropsReferences(t *testing.T) {
	old := walSegSize
	walSegSize = 256 << 10
	t.Cleanup(func() { walSegSize = old })
	s := openT(t, t.TempDir())
	check := func(when string) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		sc := &s.unitScratch
		for i, u := range sc.units[:cap(sc.units)] {
			if u != nil {
				t.Fatalf("%s: unit %d of the scratch space is kept", when, i)
			}
		}
		for i, o := range sc.ops[:cap(sc.ops)] {
			if o.key != nil || o.value != nil {
				t.Fatalf("%s: op %d of the scratch space is kept", when, i)
			}
		}
		for i, o := range s.logScratch[:cap(s.logScratch)] {
			if o.key != nil || o.value != nil {
				t.Fatalf("%s: op %d of the log's scratch space is kept", when, i)
			}
		}
		if len(sc.byKey) != 0 {
			t.Fatalf("%s: %d keys kept", when, len(sc.byKey))
		}
	}
	big := &routing.Ready{}
	for i := range 60 {
		d := delivery(i)
		d.Broadcast = false
		big.Deliveries = append(big.Deliveries, d)
		big.Persist = append(big.Persist, routing.Record{Key: fmt.Sprintf("c/%04d", i), Value: make([]byte, 4000)})
	}
	apply(t, s, big)
	check("after a batch split over several records")
	apply(t, s, &routing.Ready{Deliveries: big.Deliveries[:2], Persist: big.Persist[:3], Deletes: []string{"c/0007"}})
	check("after a smaller batch")
	if _, _, err := s.ApplyAsync(&routing.Ready{Persist: []routing.Record{{Key: "c/x", Value: make([]byte, s.db.MaxBatchSize())}}}); !errors.Is(err, ErrBatchTooBig) {
		t.Fatalf("a record of MaxBatchSize bytes: %v, want ErrBatchTooBig", err)
	}
	check("after a refused batch")
}
