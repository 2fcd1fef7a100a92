package routing

import (
	"fmt"
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
