package routing

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"meshd.dev/meshd/protocol"
)

func testIDSet(t *testing.T) idSet {
	t.Helper()
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	return newIDSet(id)
}

func idOf(v uint64) (id [protocol.PathRequestIDSize]byte) {
	binary.LittleEndian.PutUint64(id[:], v)
	return id
}

// TestIDSetMatchesRing checks the set against the plain model it replaces:
// the last pathReqSeenSize distinct IDs are remembered, older ones are
// not. Small values repeat often, so hits, evictions and re-additions of
// evicted IDs (and ID 0) all happen, and the table grows to its largest.
func TestIDSetMatchesRing(t *testing.T) {
	s := testIDSet(t)
	var order []uint64
	model := map[uint64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 60000; n++ {
		v := r.Uint64N(3 * pathReqSeenSize)
		if n%7 == 0 {
			v = r.Uint64() // mostly new, far apart
		}
		want := !model[v]
		if got := s.add(idOf(v)); got != want {
			t.Fatalf("add %d (#%d) = %v, want %v", v, n, got, want)
		}
		if want {
			order = append(order, v)
			model[v] = true
			if len(order) > pathReqSeenSize {
				delete(model, order[0])
				order = order[1:]
			}
		}
	}
	for v := range uint64(3 * pathReqSeenSize) {
		if _, ok := s.find(v); v != 0 && ok != model[v] {
			t.Fatalf("%d present %v, want %v", v, ok, model[v])
		}
	}
	if len(s.slots) > 2*pathReqSeenSize {
		t.Fatalf("table grew to %d slots for %d IDs", len(s.slots), pathReqSeenSize)
	}
}

// TestIDSetKeyed: two nodes place the same IDs in different slots, so IDs
// chosen to collide at one node do not collide at another.
func TestIDSetKeyed(t *testing.T) {
	a := testIDSet(t)
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{2}))
	if err != nil {
		t.Fatal(err)
	}
	b := newIDSet(id)
	a.slots, b.slots = make([]uint64, 1024), make([]uint64, 1024)
	same := 0
	for v := uint64(1); v <= 1000; v++ {
		if a.home(v) == b.home(v) {
			same++
		}
	}
	if same > 20 {
		t.Fatalf("%d of 1000 IDs share their slot at two nodes", same)
	}
}
