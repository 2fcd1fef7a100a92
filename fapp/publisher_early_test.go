package fapp

import (
	"errors"
	"testing"
	"time"
)

// newEarlyPublisher is a publisher that may release up to four own edits
// per epoch early (the daemon's setting), with the template set at testNow
// and its first announce released.
func newEarlyPublisher(t *testing.T) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{Sequence: 41, EarlyReleases: 4})
	if err != nil {
		t.Fatal(err)
	}
	p.SetProfile(*testAnnounce(t, 0), testNow)
	return p
}

func minute(m int) time.Time { return testNow.Add(time.Duration(m) * time.Minute) } // testNow is an epoch boundary

// TestPublisherEarlyOwnEdit: the therapist's first offer and a later edit
// of the slots go out at once, not up to an epoch later, dated at the
// boundary before them like any announce.
func TestPublisherEarlyOwnEdit(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(2))
	_, a, ok, err := p.Release(id, minute(2))
	if !ok || err != nil || !a.Issued.Equal(minute(0)) || a.Sequence != 42 || len(a.Slots) != 2 {
		t.Fatalf("first offer not released at once: %+v %v %v", a, ok, err)
	}
	if _, _, ok, _ := p.Release(id, minute(3)); ok {
		t.Fatal("released again without a change")
	}
	p.SetSlots(testSlots(3), minute(20))
	raw, a, ok, err := p.Release(id, minute(20))
	if !ok || err != nil || !a.Issued.Equal(minute(15)) || a.Sequence != 43 || len(a.Slots) != 3 {
		t.Fatalf("edit not released at once: %+v %v %v", a, ok, err)
	}
	if _, err := ParseSlotAnnounce(raw, minute(20), 0); err != nil {
		t.Fatalf("early announce does not parse: %v", err)
	}
	if _, ok := p.Next(); !ok {
		t.Fatal("no refresh planned after an early release")
	}
}

// TestPublisherEarlyKeepsStatusesBatched (attack: time a reservation): a
// slot turns GEHALTEN at 10:17 and the therapist adds a slot at 10:18. The
// early announce carries the new slot but still shows the held slot FREI,
// as published; GEHALTEN goes out at the 10:30 boundary, as without the
// edit. A reservation alone is never released early.
func TestPublisherEarlyKeepsStatusesBatched(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(0))
	if _, _, ok, _ := p.Release(id, minute(15)); !ok {
		t.Fatal("first release")
	}
	if err := p.SetStatus(1, SlotGehalten, minute(17)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := p.Release(id, minute(17)); ok {
		t.Fatal("a reservation alone was released before the boundary")
	}
	p.SetSlots(append(p.Slots(), testSlots(3)[2]), minute(18))
	_, a, ok, err := p.Release(id, minute(18))
	if !ok || err != nil || len(a.Slots) != 3 {
		t.Fatalf("the edit was not released early: %+v %v %v", a, ok, err)
	}
	if a.Slots[0].Status != SlotFrei || a.Slots[2].Status != SlotFrei {
		t.Fatalf("the early announce shows statuses %v %v: it times the reservation", a.Slots[0].Status, a.Slots[2].Status)
	}
	if _, _, ok, _ := p.Release(id, minute(29)); ok {
		t.Fatal("the held status went out before the boundary")
	}
	_, a, ok, _ = p.Release(id, minute(30))
	if !ok || !a.Issued.Equal(minute(30)) || a.Slots[0].Status != SlotGehalten {
		t.Fatalf("the held status is not released at the boundary: %+v %v", a, ok)
	}
}

// TestPublisherEarlyFloodBounded (attack: an app that edits in a loop):
// edits every second for an hour yield at most EarlyReleases early
// announces per epoch plus the boundary ones.
func TestPublisherEarlyFloodBounded(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	perEpoch := map[time.Time]int{}
	for s := 0; s < 3600; s++ {
		now := testNow.Add(time.Duration(s) * time.Second)
		p.SetSlots(testSlots(1+s%3), now)
		if _, a, ok, err := p.Release(id, now); err != nil {
			t.Fatal(err)
		} else if ok {
			perEpoch[a.Issued]++
		}
	}
	if len(perEpoch) != 4 {
		t.Fatalf("releases in %d epochs, want 4: %v", len(perEpoch), perEpoch)
	}
	for e, n := range perEpoch {
		if n > 4+1 {
			t.Fatalf("%d announces in the epoch of %v, want at most 5", n, e)
		}
	}
}

func TestPublisherEarlyConfig(t *testing.T) {
	if _, err := NewPublisher(PublisherConfig{EarlyReleases: -1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("negative early releases: %v", err)
	}
}

// TestPublisherRestoredNotEarly (attack: time a reservation by a restart):
// a slot held after the last announce is not released when the node
// restarts, nor by an edit after the restart, before the boundary.
func TestPublisherRestoredNotEarly(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(0))
	_, last, _, _ := p.Release(id, minute(0))
	held := p.Slots()
	held[0].Status = SlotGehalten
	for _, known := range []*SlotAnnounce{last, nil} {
		q, err := NewPublisher(PublisherConfig{Sequence: 42, EarlyReleases: 4}) // the restarted node
		if err != nil {
			t.Fatal(err)
		}
		q.SetProfile(*testAnnounce(t, 0), minute(17))
		q.SetSlots(held, minute(17))
		q.Restored(known)
		if _, _, ok, _ := q.Release(id, minute(17)); ok {
			t.Fatalf("released at the restart (last announce known: %v)", known != nil)
		}
		q.SetSlots(append(q.Slots(), testSlots(3)[2]), minute(18))
		_, a, ok, _ := q.Release(id, minute(18))
		if known == nil && ok {
			t.Fatal("an early release without the last announce")
		}
		if known != nil && (!ok || a.Slots[0].Status != SlotFrei) {
			t.Fatalf("edit after the restart: %+v %v, want released with slot 1 FREI", a, ok)
		}
		if _, a, ok, _ := q.Release(id, minute(30)); !ok || a.Slots[0].Status != SlotGehalten {
			t.Fatalf("boundary after the restart: %+v %v", a, ok)
		}
	}
}

// TestPublisherEarlyRepeatedAtBoundary: an early announce is repeated at
// the next boundary. A node that missed the early one (a broadcast sent
// just after a subscription can reach nobody) gets the edit within an
// epoch, not at the refresh half a lifetime later.
func TestPublisherEarlyRepeatedAtBoundary(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(2))
	if _, a, ok, _ := p.Release(id, minute(2)); !ok || a.Sequence != 42 {
		t.Fatalf("first offer not released at once: %+v %v", a, ok)
	}
	if at, ok := p.Next(); !ok || !at.Equal(minute(15)) {
		t.Fatalf("next release at %v (%v), want the boundary %v", at, ok, minute(15))
	}
	_, a, ok, err := p.Release(id, minute(15))
	if !ok || err != nil || a.Sequence != 43 || !a.Issued.Equal(minute(15)) || len(a.Slots) != 2 {
		t.Fatalf("early announce not repeated at the boundary: %+v %v %v", a, ok, err)
	}
	if at, ok := p.Next(); !ok || !at.After(minute(30)) {
		t.Fatalf("after the boundary repeat the next release is at %v (%v), want the refresh", at, ok)
	}
}

// TestPublisherRepeatIsNotPending: the boundary repeat of an early
// announce is not a pending change (the API's "pending" must not claim an
// unpublished edit).
func TestPublisherRepeatIsNotPending(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(2))
	if p.Repeating() {
		t.Fatal("repeating before anything was released")
	}
	if _, _, ok, _ := p.Release(id, minute(2)); !ok {
		t.Fatal("first offer not released at once")
	}
	if !p.Repeating() {
		t.Fatal("the early announce's boundary repeat is not marked as a repeat")
	}
	p.SetSlots(testSlots(3), minute(4)) // a new edit is pending again
	if p.Repeating() {
		t.Fatal("a pending edit reported as a mere repeat")
	}
}
