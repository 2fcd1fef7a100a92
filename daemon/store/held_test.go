package store

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"meshd.dev/meshd/routing"
)

// A heldFilter never says "certainly not" of a key it was built with or
// given, and says "may hold" of few others while it has room.
func TestHeldFilterNoFalseAbsent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte { return fmt.Appendf(nil, "%sk%016x", heldPrefix, rng.Uint64()) }
	seed := maphash.MakeSeed()
	var built [][]byte
	var hashes []uint64
	for range 5000 {
		k := key()
		built = append(built, k)
		hashes = append(hashes, maphash.Bytes(seed, k))
	}
	f := newHeldFilter(seed, hashes)
	var added [][]byte
	for !f.full() {
		k := key()
		f.add(k)
		added = append(added, k)
	}
	if len(added) != 5000+heldMinKeys+1 {
		t.Fatalf("full after %d adds, want %d", len(added), 5000+heldMinKeys+1)
	}
	for _, k := range append(built, added...) {
		if !f.mayHold(k) {
			t.Fatalf("%s: certainly not, although it was given", k)
		}
	}
	fp := 0
	for range 100000 {
		if f.mayHold(key()) {
			fp++
		}
	}
	if fp > 1000 { // 1 %; about 0.2 % expected at 16 bits a key
		t.Fatalf("%d of 100,000 other keys may be held", fp)
	}
}

// The applier leaves out a merged delete of a custody key badger never
// held without asking badger, and still writes the delete of one badger
// holds: from before the store opened (the filter's build), from an
// earlier group (the applier's adds), and after the filter was rebuilt.
// Fails if the filter misses keys present at open, keys the applier set,
// or keys present at a rebuild (the key survives its delete), and if the
// filter is never consulted (no skips).
func TestHeldFilterMergedDeletes(t *testing.T) {
	old := heldMinKeys
	heldMinKeys = 8 // a rebuild after a few sets
	t.Cleanup(func() { heldMinKeys = old })
	dir := t.TempDir()
	s := openT(t, dir)
	apply(t, s, rec("c/atopen", "v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	apply(t, s, rec("c/earlier", "v"))
	records(t, s) // applied: badger holds c/earlier
	setDelete := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			apply(t, s, rec(k, "again"))
			apply(t, s, &routing.Ready{Deletes: []string{k}})
		}
		if got := records(t, s); len(got) != 0 { // one group: each set merged into its delete
			t.Fatalf("left in badger: %v", got)
		}
	}
	setDelete("c/atopen", "c/earlier", "c/never")
	if n := s.wal.heldSkips.Load(); n != 1 {
		t.Fatalf("%d merged deletes left out on the filter's word, want 1 (c/never)", n)
	}
	// Enough sets that reach badger to spend the filter's room: it is
	// built again from badger, and the keys badger holds are in it.
	f0 := s.wal.held
	fill := f0.room + 4
	for i := range fill {
		apply(t, s, rec(fmt.Sprintf("c/fill%d", i), "v"))
		records(t, s)
	}
	if s.wal.held == f0 {
		t.Fatal("the filter was not rebuilt when its room was spent")
	}
	for i := range fill {
		apply(t, s, &routing.Ready{Deletes: []string{fmt.Sprintf("c/fill%d", i)}})
	}
	setDelete("c/fill0", "c/never2") // c/fill0 deleted in the same group: its set and delete merge
	if n := s.wal.heldSkips.Load(); n != 2 {
		t.Fatalf("%d merged deletes left out on the filter's word, want 2", n)
	}
}
