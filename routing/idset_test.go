package routing

import (
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

// TestIDSetMatchesRing checks the set against the plain model it replaces:
// the last pathReqSeenSize distinct keys are remembered, older ones are
// not, each with the highest tag it was raised to (by the margin asked
// for). Small values repeat
// often, so hits, raises, evictions and re-additions of evicted keys (and
// key 0) all happen, and the table grows to its largest; entries moved
// back by a removal must keep their tags.
func TestIDSetMatchesRing(t *testing.T) {
	s := testIDSet(t)
	var order []uint64
	model := map[uint64]uint8{}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 60000; n++ {
		v := r.Uint64N(3 * pathReqSeenSize)
		if n%7 == 0 {
			v = r.Uint64() // mostly new, far apart
		}
		tag, margin := uint8(r.Uint32N(16)), uint8(1+r.Uint32N(3))
		old, had := model[v]
		wantAdded, wantRaised := !had, had && tag > old && int(tag) >= int(old)+int(margin)
		added, raised := s.raise(v, tag, margin)
		if added != wantAdded || raised != wantRaised {
			t.Fatalf("raise %d to %d by %d (#%d, had %v with %d) = %v, %v; want %v, %v", v, tag, margin, n, had, old, added, raised, wantAdded, wantRaised)
		}
		if added || raised {
			model[v] = tag
		}
		if added {
			order = append(order, v)
			if len(order) > pathReqSeenSize {
				delete(model, order[0])
				order = order[1:]
			}
		}
	}
	for v := range uint64(3 * pathReqSeenSize) {
		tag, ok := model[v]
		if v == 0 {
			if s.zero != ok || s.ztag != tag {
				t.Fatalf("key 0 present %v tag %d, want %v %d", s.zero, s.ztag, ok, tag)
			}
			continue
		}
		i, found := s.find(v)
		if found != ok || found && s.tags[i] != tag {
			t.Fatalf("%d present %v, want %v (tag %d, want %d)", v, found, ok, s.tags[i], tag)
		}
	}
	if len(s.slots) > 2*pathReqSeenSize {
		t.Fatalf("table grew to %d slots for %d keys", len(s.slots), pathReqSeenSize)
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
