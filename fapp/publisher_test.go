package fapp

import (
	"errors"
	"testing"
	"time"
)

func newTestPublisher(t *testing.T) *Publisher {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{Sequence: 41})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *testAnnounce(t, 0)
	p.SetProfile(tmpl, testNow)
	return p
}

// TestPublisherBatchesIntoEpochs: changes at 10:02 and 10:14 appear together
// in one announce dated 10:15, and nothing is released before it, so an
// observer of announces cannot tell when within the epoch a slot changed.
func TestPublisherBatchesIntoEpochs(t *testing.T) {
	id := testIdentity(t, 1)
	p := newTestPublisher(t)
	at := func(m int) time.Time { return testNow.Add(time.Duration(m) * time.Minute) } // testNow is an epoch boundary
	p.SetSlots(testSlots(3), at(0))
	if raw, _, ok, err := p.Release(id, at(0)); ok || err != nil || raw != nil {
		t.Fatalf("released at the change itself: %v %v", ok, err)
	}
	if _, a, ok, err := p.Release(id, at(15)); !ok || err != nil || !a.Issued.Equal(at(15)) || a.Sequence != 42 {
		t.Fatalf("first release: %+v %v %v", a, ok, err)
	}
	// Two reservations inside one epoch.
	if err := p.SetStatus(1, SlotGehalten, at(17)); err != nil {
		t.Fatal(err)
	}
	if err := p.SetStatus(2, SlotVergeben, at(29)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []int{17, 20, 29} {
		if _, _, ok, _ := p.Release(id, at(m)); ok {
			t.Fatalf("released at minute %d, inside the epoch", m)
		}
	}
	next, ok := p.Next()
	if !ok || !next.Equal(at(30)) {
		t.Fatalf("next release %v %v, want %v", next, ok, at(30))
	}
	// Released late (the daemon was busy): still dated at the boundary.
	raw, a, ok, err := p.Release(id, at(33))
	if !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if !a.Issued.Equal(at(30)) || a.Sequence != 43 || a.Slots[0].Status != SlotGehalten || a.Slots[1].Status != SlotVergeben {
		t.Fatalf("batched announce: %+v", a)
	}
	if _, err := ParseSlotAnnounce(raw, at(33), 0); err != nil {
		t.Fatalf("released announce does not parse: %v", err)
	}
	// Nothing changed: nothing until the refresh at half the lifetime.
	if _, _, ok, _ := p.Release(id, at(45)); ok {
		t.Fatal("released without a change")
	}
	next, _ = p.Next()
	if want := at(30).Add(DefaultAnnounceLifetime / 2).Add(DefaultEpoch); !next.Equal(want) {
		t.Fatalf("refresh at %v, want %v", next, want)
	}
	if _, a, ok, _ := p.Release(id, next); !ok || a.Sequence != 44 {
		t.Fatalf("refresh: %+v %v", a, ok)
	}
	if p.Sequence() != 44 {
		t.Fatalf("sequence %d", p.Sequence())
	}
}

func TestPublisherRollsSlots(t *testing.T) {
	id := testIdentity(t, 1)
	p := newTestPublisher(t)
	weekly := Slot{ID: 7, Terminart: TherapieplatzKZT, Verfahren: Verhaltenstherapie, Setting: Einzel, Modalitaet: Praxis,
		Voraussetzung: VoraussetzungKeine, Start: BerlinTime(2026, 12, 3, 18, 0), Dauer: 50, Woechentlich: true,
		Bis: BerlinTime(2026, 12, 24, 18, 0), Status: SlotFrei}
	p.SetSlots(append(testSlots(2), weekly), testNow)
	if _, _, ok, err := p.Release(id, testNow.Add(DefaultEpoch)); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	// Two days later: single slot 1 (Dec 3) is gone, slot 2 (Dec 4) too,
	// the weekly place moves to Dec 10.
	// The refresh (due after half the lifetime) rolls them.
	later := BerlinTime(2026, 12, 5, 12, 0)
	_, a, ok, err := p.Release(id, later)
	if !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if len(a.Slots) != 1 || a.Slots[0].ID != 7 || !a.Slots[0].Start.Equal(BerlinTime(2026, 12, 10, 18, 0)) || a.Slots[0].Occurrences() != 3 {
		t.Fatalf("rolled slots: %+v", a.Slots)
	}
}

func TestPublisherWithdraw(t *testing.T) {
	id := testIdentity(t, 1)
	p := newTestPublisher(t)
	p.SetSlots(testSlots(1), testNow)
	p.Release(id, testNow.Add(DefaultEpoch))
	p.Withdraw(testNow.Add(DefaultEpoch + time.Minute))
	raw, a, ok, err := p.Release(id, testNow.Add(2*DefaultEpoch))
	if !ok || err != nil || !a.Withdrawn || len(a.Slots) != 0 {
		t.Fatalf("withdrawal: %+v %v %v", a, ok, err)
	}
	if got, err := ParseSlotAnnounce(raw, testNow.Add(2*DefaultEpoch), 0); err != nil || !got.Withdrawn {
		t.Fatalf("withdrawal does not parse: %v", err)
	}
	if _, ok := p.Next(); ok {
		t.Fatal("a withdrawn offer is refreshed")
	}
}

func TestPublisherConfig(t *testing.T) {
	for _, c := range []PublisherConfig{{Epoch: 30 * time.Second}, {Epoch: 90 * time.Second}, {Lifetime: MaxAnnounceLifetime + time.Minute}, {Epoch: time.Hour, Lifetime: time.Hour}} {
		if _, err := NewPublisher(c); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	p := newTestPublisher(t)
	if err := p.SetStatus(99, SlotFrei, testNow); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown slot: %v", err)
	}
	if err := p.SetStatus(1, 0, testNow); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid status: %v", err)
	}
	if _, ok := (&Publisher{}).Next(); ok {
		t.Fatal("a publisher without a profile is due")
	}
}

func TestPublisherOffersAndBook(t *testing.T) {
	p := newTestPublisher(t)
	weekly := Slot{ID: 7, Terminart: TherapieplatzKZT, Verfahren: Verhaltenstherapie, Setting: Einzel, Modalitaet: Praxis,
		Voraussetzung: VoraussetzungKeine, Start: BerlinTime(2026, 12, 3, 18, 0), Dauer: 50, Woechentlich: true,
		Bis: BerlinTime(2026, 12, 24, 18, 0), Status: SlotFrei}
	slots := append(testSlots(2), weekly)
	slots[1].Status = SlotVergeben
	p.SetSlots(slots, testNow)
	cases := []struct {
		id    uint16
		start time.Time
		ok    bool
	}{
		{1, slots[0].Start, true},
		{1, slots[0].Start.Add(time.Hour), false},
		{2, slots[1].Start, false}, // VERGEBEN
		{9, slots[0].Start, false}, // no such slot
		{7, BerlinTime(2026, 12, 17, 18, 0), true},
		{7, BerlinTime(2026, 12, 31, 18, 0), false}, // after Bis
		{7, BerlinTime(2026, 12, 17, 19, 0), false},
	}
	for _, c := range cases {
		if err := p.Offers(c.id, c.start); (err == nil) != c.ok {
			t.Fatalf("slot %d at %v: %v", c.id, c.start, err)
		}
	}
	// A Book wired to the publisher refuses a request for a slot not on offer.
	w := newResWorld(t)
	book, _ := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}), Offers: p.Offers})
	w.book, w.slot = book, SlotRef{Therapist: keyOf(t, 1), Slot: 9}
	_, sealed := w.request(t, testNow)
	if _, err := book.Open(sealed, testNow); !errors.Is(err, ErrNotFound) {
		t.Fatalf("request for a slot not on offer: %v", err)
	}
	w.slot, w.start = SlotRef{Therapist: keyOf(t, 1), Slot: 7}, BerlinTime(2026, 12, 10, 18, 0)
	_, sealed = w.request(t, testNow)
	if _, err := book.Open(sealed, testNow); err != nil {
		t.Fatalf("request for an offered weekly date: %v", err)
	}
	p.Withdraw(testNow)
	if err := p.Offers(1, slots[0].Start); !errors.Is(err, ErrNotFound) {
		t.Fatalf("withdrawn: %v", err)
	}
}
