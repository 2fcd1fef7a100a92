package fapp

import (
	"errors"
	"testing"
	"time"
)

// TestPublisherEpochOffset: publishers with the default, Unix-aligned
// epochs all released at the same instant (on LoRa, every therapist's
// announce collided with the others'). With the offset EpochOffset derives
// from the therapist key, the releases spread over the epoch, each node's
// at a fixed place: a release is still dated at the node's own boundary,
// and every change inside one of its epochs still goes out together.
func TestPublisherEpochOffset(t *testing.T) {
	epoch := DefaultEpoch
	seen := map[time.Duration]bool{}
	for seed := byte(1); seed <= 8; seed++ {
		k := keyOf(t, seed)
		off := EpochOffset(k, epoch)
		if off != EpochOffset(k, epoch) {
			t.Fatal("EpochOffset is not stable")
		}
		if off < 0 || off >= epoch || off%time.Second != 0 {
			t.Fatalf("offset %v: want whole seconds in [0, %v)", off, epoch)
		}
		seen[off] = true

		p, err := NewPublisher(PublisherConfig{Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		p.SetProfile(*testAnnounce(t, 0), testNow) // testNow is a Unix-aligned boundary
		p.SetSlots(testSlots(2), testNow)
		want := testNow.Add(off) // the node's first boundary after the change
		if off == 0 {
			want = want.Add(epoch)
		}
		if next, ok := p.Next(); !ok || !next.Equal(want) {
			t.Fatalf("offset %v: next release %v, want %v", off, next, want)
		}
		if _, _, ok, _ := p.Release(testIdentity(t, seed), want.Add(-time.Second)); ok {
			t.Fatalf("offset %v: released before the node's boundary", off)
		}
		_, a, ok, err := p.Release(testIdentity(t, seed), want.Add(3*time.Second))
		if !ok || err != nil || !a.Issued.Equal(want) {
			t.Fatalf("offset %v: release %+v %v %v, want dated %v", off, a, ok, err, want)
		}
	}
	if len(seen) < 6 {
		t.Fatalf("8 therapists share %d release instants: %v", len(seen), seen)
	}
	for _, off := range []time.Duration{-time.Second, epoch, time.Second + time.Millisecond} {
		if _, err := NewPublisher(PublisherConfig{Offset: off}); !errors.Is(err, ErrMalformed) {
			t.Errorf("offset %v accepted: %v", off, err)
		}
	}
}
