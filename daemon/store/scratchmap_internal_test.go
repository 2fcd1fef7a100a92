package store

import (
	"fmt"
	"testing"
)

// TestScratchMapBounded: a kept scratch map is emptied for reuse after a
// use of up to scratchMapMax keys and dropped after a bigger one (clearing
// a Go map costs what it once held, so one big batch would tax every later
// batch).
func TestScratchMapBounded(t *testing.T) {
	m := map[string]int{}
	for _, n := range []int{10, scratchMapMax + 1} {
		for i := range n {
			m[fmt.Sprint(i)] = i
		}
		m = dropOrClear(m)
		if dropped := m == nil; dropped != (n > scratchMapMax) || len(m) != 0 {
			t.Fatalf("%d keys: dropped %v, %d keys left", n, dropped, len(m))
		}
	}
}
