package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
)

// TestFAPPAttackWeeklyPlaceRolledTwice: a weekly place is one place
// (TestFAPPAttackWeeklyPlaceTwice), but the book judged it by the
// occurrences the slot has now, and the publisher rolls a weekly slot on
// to its next occurrence once one has passed: a request for the first
// week, still ANGEFRAGT when that week passed (requests live 7 days, the
// first week is at most 7 days off), was a place of its own from then on.
// Holding it left a request for a later week undeclined, and the therapist
// could confirm that one too: the place given twice again, a week later.
func TestFAPPAttackWeeklyPlaceRolledTwice(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := becomeTherapist(t, ctx, n, is, clk)
	f := n.fapp
	f.mu.Lock()
	place := f.pub.Slots()[1]
	f.mu.Unlock()
	if !place.Woechentlich || place.Occurrences() < 3 {
		t.Fatalf("the test offer's second slot is not a weekly place: %+v", place)
	}
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[1].ID}
	now := clk.Now()
	deliver := func(start time.Time) fapp.RequestID {
		pr, sealed, err := pb.NewRequest(randReader, n.id.Public(), ref, start, fapp.RequestOptions{}, now)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		b := store.FAPPBatch{Put: map[string][]byte{}}
		f.onTherapistMsgLocked(&b, mustIdentity(t).Address(), sealed, now)
		f.mu.Unlock()
		if err := f.write(b); err != nil {
			t.Fatal(err)
		}
		return pr.Request.ID
	}
	first, later := deliver(place.Occurrence(0)), deliver(place.Occurrence(1))

	// The first week passes before the therapist decides; the next
	// announce rolls the place on to its second week.
	clk.advance(place.Start.Sub(clk.Now()) + time.Hour)
	f.poke()
	waitFAPP(t, ctx, n, "the place rolls on to its second week", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, ok := findOwn(f.pub.Slots(), place.ID)
		return ok && s.Start.Equal(place.Occurrence(1))
	})
	now = clk.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.respondLocked(first, decideHold, "", now.Add(24*time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.book.Get(later); r.State != fapp.Abgelehnt {
		t.Errorf("the request for the second week is %v after the first week's hold, want ABGELEHNT", r.State)
	}
	if _, err := f.respondLocked(later, decideConfirm, "", time.Time{}, now); err == nil {
		t.Error("the weekly place held for one patient was confirmed for another")
	}
}

// findOwn returns the slot with id among slots.
func findOwn(slots []fapp.Slot, id uint16) (fapp.Slot, bool) {
	for _, s := range slots {
		if s.ID == id {
			return s, true
		}
	}
	return fapp.Slot{}, false
}

// TestRolledPast: only the weeks of a weekly slot's own series before its
// current start count, not any earlier time, nor a single slot's.
func TestRolledPast(t *testing.T) {
	start := time.Date(2026, 12, 10, 17, 0, 0, 0, time.UTC)
	s := fapp.Slot{Woechentlich: true, Start: start, Bis: start.Add(4 * 7 * 24 * time.Hour)}
	single := s
	single.Woechentlich, single.Bis = false, time.Time{}
	for _, c := range []struct {
		s     fapp.Slot
		start time.Time
		want  bool
	}{
		{s, start.Add(-7 * 24 * time.Hour), true},
		{s, start.Add(-3 * 7 * 24 * time.Hour), true},
		{s, start.Add(-7*24*time.Hour + time.Hour), false},
		{s, start.Add(-24 * time.Hour), false},
		{s, start, false}, // an occurrence now (offers), not a rolled one
		{s, start.Add(7 * 24 * time.Hour), false},
		{s, start.Add(-(fapp.MaxWeeks + 2) * 7 * 24 * time.Hour), false},
		{single, start.Add(-7 * 24 * time.Hour), false},
	} {
		if got := rolledPast(c.s, c.start); got != c.want {
			t.Errorf("rolledPast(weekly %v, start %v, at %v) = %v, want %v", c.s.Woechentlich, c.s.Start, c.start, got, c.want)
		}
	}
}

// TestIsOccurrenceAcrossClockChanges: the one-look isOccurrence agrees
// with trying every week, across both clock changes, for starts on,
// near and between the weeks.
func TestIsOccurrenceAcrossClockChanges(t *testing.T) {
	every := func(s fapp.Slot, start time.Time) bool {
		for k := range s.Occurrences() {
			if s.Occurrence(k).Equal(start) {
				return true
			}
		}
		return false
	}
	for _, first := range []time.Time{
		fapp.BerlinTime(2026, 3, 5, 18, 0), fapp.BerlinTime(2026, 10, 1, 2, 30), fapp.BerlinTime(2026, 3, 29, 2, 30),
	} {
		weekly := fapp.Slot{Woechentlich: true, Start: first, Bis: first.Add(10 * 7 * 24 * time.Hour)}
		open := fapp.Slot{Woechentlich: true, Start: first}
		single := fapp.Slot{Start: first}
		for _, s := range []fapp.Slot{weekly, open, single} {
			var starts []time.Time
			for d := -3 * 7 * 24 * time.Hour; d <= 13*7*24*time.Hour; d += 30 * time.Minute {
				starts = append(starts, first.Add(d))
			}
			for k := range 12 {
				starts = append(starts, s.Occurrence(k), s.Occurrence(k).Add(time.Hour), s.Occurrence(k).Add(-time.Hour))
			}
			for _, start := range starts {
				if got, want := isOccurrence(s, start), every(s, start); got != want {
					t.Fatalf("slot from %v (weekly %v, until %v): isOccurrence(%v) = %v, every week says %v", s.Start, s.Woechentlich, s.Bis, start, got, want)
				}
			}
		}
	}
}
