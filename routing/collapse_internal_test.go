package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCollapseOpsScratchBounded: collapseOps keeps its scratch map, empty,
// after a batch of up to opLastMax keys and drops it after a bigger one
// (clearing a Go map costs what it once held, so a kept big map would tax
// every later batch); the last op per key wins either way.
func TestCollapseOpsScratchBounded(t *testing.T) {
	var e Engine
	for _, n := range []int{10, opLastMax + 1, 10} {
		e.rd = Ready{}
		for i := range n {
			e.persist(fmt.Sprintf("k%d", i), []byte{1})
		}
		e.del("k0")
		e.collapseOps()
		if len(e.rd.Persist) != n-1 || len(e.rd.Deletes) != 1 || e.rd.Deletes[0] != "k0" {
			t.Fatalf("%d keys: %d persisted, deletes %v", n, len(e.rd.Persist), e.rd.Deletes)
		}
		if dropped := e.opLast == nil; dropped != (n > opLastMax) || len(e.opLast) != 0 {
			t.Fatalf("%d keys: scratch map dropped %v, %d keys left", n, dropped, len(e.opLast))
		}
	}
}

// TestCollapseOpsLastWins: for random runs of writes and deletes over a few
// keys, collapseOps keeps each key's last op only, in the order of those
// last ops, with its value: what a forward reading of the ops gives.
func TestCollapseOpsLastWins(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var e Engine
	for round := range 500 {
		e.rd = Ready{}
		n := rng.IntN(40)
		type want struct {
			key string
			val []byte
			del bool
		}
		var ops []want
		for i := range n {
			w := want{key: fmt.Sprintf("k%d", rng.IntN(8)), del: rng.IntN(3) == 0}
			if w.del {
				e.del(w.key)
			} else {
				w.val = []byte{byte(round), byte(i)}
				e.persist(w.key, w.val)
			}
			ops = append(ops, w)
		}
		last := map[string]int{}
		for i, w := range ops {
			last[w.key] = i
		}
		var sets []Record
		var dels []string
		for i, w := range ops {
			switch {
			case last[w.key] != i:
			case w.del:
				dels = append(dels, w.key)
			default:
				sets = append(sets, Record{Key: w.key, Value: w.val})
			}
		}
		e.collapseOps()
		if fmt.Sprint(e.rd.Persist) != fmt.Sprint(sets) || fmt.Sprint(e.rd.Deletes) != fmt.Sprint(dels) {
			t.Fatalf("round %d: got %v / %v, want %v / %v", round, e.rd.Persist, e.rd.Deletes, sets, dels)
		}
		if len(e.ops) != 0 || len(e.opLast) != 0 {
			t.Fatalf("round %d: %d ops, %d scratch keys left", round, len(e.ops), len(e.opLast))
		}
	}
}
