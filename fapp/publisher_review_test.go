package fapp

import "testing"

// TestPublisherEarlyClockBackNoNewBudget (attack: a clock that steps back
// and forth across a boundary): the early releases of an epoch are used
// up; a clock set back one epoch must not open a fresh budget, else every
// step gives EarlyReleases more announces and a flapping clock makes the
// node announce without bound. (Boundary releases are not counted: a
// change dated before a step back is due at once, as before early
// releases existed.)
func TestPublisherEarlyClockBackNoNewBudget(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	early := 0
	for i, m := range []int{16, 17, 18, 19, 20, 1, 21, 2, 22, 3, 23} { // minutes 1-3: the clock stepped back
		p.SetSlots(testSlots(1+i%3), minute(m))
		at, due := p.Next()
		_, _, ok, err := p.Release(id, minute(m))
		if err != nil {
			t.Fatal(err)
		}
		if ok && (!due || minute(m).Before(at)) {
			early++
		}
	}
	if early > 4 {
		t.Fatalf("%d early announces in the epoch of minute 15, want at most 4", early)
	}
}

// TestPublisherEarlyReaddedSlotKeepsStatus (attack: time a reservation by
// removing a held slot and adding it back): slot 1 turns GEHALTEN at
// minute 17; the therapist removes it at 18 (early) and puts the same list
// back at 19 (an app that restores what fapp.slots showed). The early
// announce at 19 must not show GEHALTEN: that would tell an observer the
// reservation happened before 19, inside the epoch.
func TestPublisherEarlyReaddedSlotKeepsStatus(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(0))
	if _, _, ok, _ := p.Release(id, minute(15)); !ok {
		t.Fatal("first release")
	}
	if err := p.SetStatus(1, SlotGehalten, minute(17)); err != nil {
		t.Fatal(err)
	}
	all := p.Slots()
	p.SetSlots(all[1:], minute(18))
	if _, _, ok, _ := p.Release(id, minute(18)); !ok {
		t.Fatal("removal not released early")
	}
	p.SetSlots(all, minute(19))
	_, a, ok, _ := p.Release(id, minute(19))
	if ok && a.Slots[0].ID == 1 && a.Slots[0].Status != SlotFrei {
		t.Fatalf("early announce at minute 19 shows slot 1 %v: it times the reservation", a.Slots[0].Status)
	}
	_, a, ok, _ = p.Release(id, minute(30))
	if !ok || a.Slots[0].Status != SlotGehalten {
		t.Fatalf("the held status is not released at the boundary: %+v %v", a, ok)
	}
}

// TestPublisherRestoredStaleAnnounce (attack: a stored announce older
// than the last release, e.g. a store restored from a backup): slot 1 was
// published GEHALTEN at minute 15 and freed at 20 (a cancel). A restarted
// publisher given the minute-0 announce (FREI) must not release early: an
// edit would show FREI before the boundary and time the cancel.
func TestPublisherRestoredStaleAnnounce(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(0))
	_, stale, _, _ := p.Release(id, minute(0))
	if err := p.SetStatus(1, SlotGehalten, minute(5)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := p.Release(id, minute(15)); !ok {
		t.Fatal("boundary release")
	}
	freed := p.Slots() // cancelled at minute 20: FREI again
	freed[0].Status = SlotFrei
	q, err := NewPublisher(PublisherConfig{Sequence: p.Sequence(), EarlyReleases: 4})
	if err != nil {
		t.Fatal(err)
	}
	q.SetProfile(*testAnnounce(t, 0), minute(21))
	q.SetSlots(freed, minute(21))
	q.Restored(stale)
	q.SetSlots(append(q.Slots(), testSlots(3)[2]), minute(22))
	if _, a, ok, _ := q.Release(id, minute(22)); ok && a.Slots[0].Status == SlotFrei {
		t.Fatal("early release after a restart from a stale announce shows the cancel before the boundary")
	}
}

// TestPublisherEarlyRepublishAfterWithdraw: a therapist withdraws the
// whole offer and publishes new slots (which reuse the IDs) in the same
// epoch; the new slots go out early with their own statuses, not those
// the withdrawn slots were published with.
func TestPublisherEarlyRepublishAfterWithdraw(t *testing.T) {
	id := testIdentity(t, 1)
	p := newEarlyPublisher(t)
	p.SetSlots(testSlots(2), minute(0))
	if err := p.SetStatus(1, SlotVergeben, minute(1)); err != nil {
		t.Fatal(err)
	}
	if _, a, ok, _ := p.Release(id, minute(15)); !ok || a.Slots[0].Status != SlotVergeben {
		t.Fatal("boundary release")
	}
	p.Withdraw(minute(16))
	if _, _, ok, _ := p.Release(id, minute(16)); !ok {
		t.Fatal("withdrawal not released early")
	}
	p.SetSlots(testSlots(2), minute(17))
	if _, a, ok, _ := p.Release(id, minute(17)); !ok || a.Slots[0].Status != SlotFrei {
		t.Fatalf("new offer after a withdrawal: %+v %v, want released early with slot 1 FREI", a, ok)
	}
}
