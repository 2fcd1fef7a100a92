package sim

import "testing"

// TestIdentitiesAhead: identities made on several goroutines are those
// made one by one, at their index, and each is handed out once.
func TestIdentitiesAhead(t *testing.T) {
	const n = 130 // two workers at least where there are two cores
	p := makeIdentities(7, n)
	for _, i := range []int{0, 1, 64, 129} {
		want, err := newNodeIdentity(7, i)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.take(7, i)
		if err != nil || got.Address() != want.Address() {
			t.Fatalf("node %d: %v (%v), want %v", i, got.Address(), err, want.Address())
		}
		if p.ids[i] != nil {
			t.Fatalf("node %d's identity still held after take", i)
		}
	}
	if got, _ := p.take(7, n+5); got == nil {
		t.Fatal("no identity past the ones made ahead")
	}
}
