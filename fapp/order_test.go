package fapp

import (
	"testing"
	"time"
)

// The mesh does not deliver a therapist's messages in the order they were
// sent: custody, two routes or a relay that holds one back can swap them,
// and a patient's phone that was off gets them after its own clock has
// moved on. The patient's book must end where the therapist's book is.

// confirmedThenCancelled returns a world whose therapist confirmed the
// request at testNow and then cancelled it, and the two signed messages.
func confirmedThenCancelled(t *testing.T, hold bool) (*resWorld, RequestID, Message, Message) {
	t.Helper()
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	if _, err := w.book.Open(sealed, testNow); err != nil {
		t.Fatal(err)
	}
	id := pr.Request.ID
	var first Message
	var err error
	if hold {
		first, err = w.book.Hold(id, testNow.Add(24*time.Hour), "", testNow)
	} else {
		first, err = w.book.Confirm(id, "Praxis Muster", testNow)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.book.CancelByTherapist(id, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return w, id, first, c
}

// TestAttackReorderedConfirmAndCancel: the therapist confirms, then
// cancels; the cancel overtakes the confirmation. The patient's book
// refused the cancel (ANGEFRAGT cannot be cancelled by the therapist) and
// then applied the confirmation: the patient went to an appointment the
// therapist had cancelled. The same with a hold instead of a confirmation.
func TestAttackReorderedConfirmAndCancel(t *testing.T) {
	for _, hold := range []bool{false, true} {
		w, id, first, c := confirmedThenCancelled(t, hold)
		at := testNow.Add(2 * time.Minute)
		w.deliver(t, id, c, at)
		w.deliver(t, id, first, at)
		if got, _ := w.patient.Get(id); got.State != StorniertTherapeut {
			t.Errorf("hold %v: therapist cancelled, the patient's book says %v", hold, got.State)
		}
	}
}

// TestAttackLateConfirmAfterHoldLapsed: the therapist holds until U and
// confirms before U; the patient's node is offline and gets the
// confirmation after U. Its book had moved the hold to ABGELAUFEN and
// refused the confirmation: the therapist kept the slot VERGEBEN for a
// patient who was told it lapsed. A confirmation signed at or after U
// (which an honest therapist's book never makes) is still refused.
func TestAttackLateConfirmAfterHoldLapsed(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	w.book.Open(sealed, testNow)
	id, until := pr.Request.ID, testNow.Add(time.Hour)
	hold, err := w.book.Hold(id, until, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	w.deliver(t, id, hold, testNow)
	conf, err := w.book.Confirm(id, "", until.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if ch := w.patient.Expire(until.Add(time.Hour)); len(ch) != 1 || ch[0].State != Abgelaufen {
		t.Fatalf("patient expiry: %+v", ch)
	}
	got, err := w.deliver(t, id, conf, until.Add(2*time.Hour))
	if err != nil || got.State != Bestaetigt || got.Confirmation == nil {
		t.Fatalf("confirmation made before the hold lapsed, delivered after: %v %v", got.State, err)
	}

	w2 := newResWorld(t)
	pr2, sealed2 := w2.request(t, testNow)
	w2.book.Open(sealed2, testNow)
	id2 := pr2.Request.ID
	hold2, _ := w2.book.Hold(id2, until, "", testNow)
	w2.deliver(t, id2, hold2, testNow)
	w2.patient.Expire(until)
	late := &Response{ID: id2, Slot: w2.slot, State: Bestaetigt, Created: until}
	if err := late.Sign(w2.therapist); err != nil {
		t.Fatal(err)
	}
	if got, err := w2.deliver(t, id2, late, until.Add(time.Minute)); err == nil || got.State == Bestaetigt {
		t.Fatalf("confirmation signed when the hold had lapsed: %v %v", got.State, err)
	}
}

// TestLapsedHoldKeepsItsTime: a restored ABGELAUFEN record still judges a
// late confirmation by the time the hold lapsed.
func TestLapsedHoldKeepsItsTime(t *testing.T) {
	w := newResWorld(t)
	pr, _ := w.request(t, testNow)
	until := testNow.Add(time.Hour)
	pr.State, pr.HoldUntil = Gehalten, until
	p := NewPatientBook(PatientBookConfig{})
	if err := p.Restore(pr); err != nil {
		t.Fatal(err)
	}
	p.Expire(until.Add(3 * time.Hour))
	r, _ := p.Get(pr.Request.ID)
	raw, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePatientReservation(raw)
	if err != nil || back.State != Abgelaufen || !back.Updated.Equal(until) {
		t.Fatalf("lapsed record: %v updated %v (%v), want the hold's end %v", back.State, back.Updated, err, until)
	}
}

// TestAttackCancelOvertakesRequest: the patient asks and cancels at once;
// the cancel reaches the therapist's node first. The book dropped it as
// unknown, then took the request as ANGEFRAGT: the therapist could hold or
// confirm it (and turn other patients away) for a patient whose book says
// STORNIERT_PATIENT and refuses every answer. A cancel that names the same
// request ID but is sealed by another key cancels nothing.
func TestAttackCancelOvertakesRequest(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	cancel, err := w.patient.Cancel(w.rand, pr.Request.ID, testNow.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.Open(cancel, testNow.Add(time.Minute)); err == nil {
		t.Fatal("a cancel of an unknown request was applied")
	}
	r, err := w.book.Open(sealed, testNow.Add(2*time.Minute))
	if err != nil || r.State != StorniertPatient {
		t.Fatalf("request after its cancel: %v %v, want STORNIERT_PATIENT", r.State, err)
	}
	if _, err := w.book.Confirm(pr.Request.ID, "", testNow.Add(3*time.Minute)); err == nil {
		t.Fatal("the therapist confirmed a cancelled request")
	}

	// Someone else's cancel for that request ID, sealed and signed by
	// another key, is remembered under that key and cancels nothing.
	w2 := newResWorld(t)
	pr2, sealed2 := w2.request(t, testNow)
	forger := testIdentity(t, 9)
	c := &Cancel{ID: pr2.Request.ID, Slot: w2.slot, By: StorniertPatient, Created: testNow}
	c.Sign(forger)
	raw, _ := c.MarshalBinary()
	forged, err := SealMessage(w2.rand, forger, w2.therapist.Public(), raw, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w2.book.Open(forged, testNow)
	if r, err := w2.book.Open(sealed2, testNow.Add(time.Minute)); err != nil || r.State != Angefragt {
		t.Fatalf("request after a forged cancel: %v %v", r.State, err)
	}
}

// TestEarlyCancelsBounded: cancels of unknown requests are remembered up
// to a bound, oldest dropped first, and forgotten once their request could
// no longer be accepted.
func TestEarlyCancelsBounded(t *testing.T) {
	w := newResWorld(t)
	eph := testIdentity(t, 2)
	for i := range MaxEarlyCancels + 10 {
		c := &Cancel{Slot: w.slot, By: StorniertPatient, Created: testNow}
		c.ID[0], c.ID[1] = byte(i), byte(i>>8)
		c.Sign(eph)
		w.book.ApplyCancel(c, eph.Compact(), testNow.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(w.book.early); n != MaxEarlyCancels {
		t.Fatalf("%d early cancels held, bound %d", n, MaxEarlyCancels)
	}
	if _, ok := w.book.early[RequestID{0}]; ok {
		t.Fatal("the oldest early cancel was kept over the bound")
	}
	w.book.Expire(testNow.Add(DefaultRequestTTL + time.Hour))
	if n := len(w.book.early); n != 0 {
		t.Fatalf("%d early cancels kept past the request lifetime", n)
	}
}

// TestAttackWeeklyPlaceTwice: a weekly therapy place is one place that a
// patient takes from the occurrence asked for on. Two patients asked for
// different occurrences of it while it was FREI; the book compared
// occurrences only, so the therapist could hold one and confirm the other
// (DeclineRivals left the second alone): the place was given twice. And
// the status of the place followed whichever reservation changed last: the
// first patient's cancel made it FREI while the second had it.
func TestAttackWeeklyPlaceTwice(t *testing.T) {
	w := newResWorld(t)
	weeks := map[time.Time]bool{}
	for k := range 4 {
		weeks[w.start.Add(time.Duration(k)*7*24*time.Hour)] = true
	}
	book, err := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}),
		Occurs: func(slot uint16, start time.Time) bool { return slot == w.slot.Slot && weeks[start] }})
	if err != nil {
		t.Fatal(err)
	}
	w.book = book
	a, sa := w.request(t, testNow)
	w.start = w.start.Add(7 * 24 * time.Hour)
	b, sb := w.request(t, testNow)
	w.book.Open(sa, testNow)
	w.book.Open(sb, testNow)
	if _, err := w.book.Hold(a.Request.ID, testNow.Add(time.Hour), "", testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.Confirm(b.Request.ID, "", testNow); err == nil {
		t.Fatal("a second patient got the weekly place another holds")
	}
	if st := w.book.SlotStatus(1, w.start); st != SlotGehalten {
		t.Errorf("the place is %v at the second occurrence while held", st)
	}
	rivals, err := w.book.DeclineRivals(a.Request.ID, "", testNow)
	if err != nil || len(rivals) != 1 || rivals[0].ID != b.Request.ID {
		t.Errorf("rivals of the hold: %v %v", rivals, err)
	}
	// An occurrence no longer offered (a slot moved) is
	// another place: it neither blocks nor is blocked.
	delete(weeks, w.start)
	c, sc := w.request(t, testNow)
	w.book.Open(sc, testNow)
	if _, err := w.book.Hold(c.Request.ID, testNow.Add(time.Hour), "", testNow); err != nil {
		t.Errorf("a request for a start the place no longer has: %v", err)
	}
}

// TestDuplicatesChangeNothing: the daemon sends a stored message again
// after a crash (its outbox), so either side may get one twice. The second
// copy is refused and changes nothing, on both sides.
func TestDuplicatesChangeNothing(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	id := pr.Request.ID
	for i := range 2 {
		r, err := w.book.Open(sealed, testNow)
		if (i == 0) != (err == nil) || (i == 0 && r.State != Angefragt) {
			t.Fatalf("request copy %d: %v %v", i, r.State, err)
		}
	}
	hold, _ := w.book.Hold(id, testNow.Add(time.Hour), "", testNow)
	conf, _ := w.book.Confirm(id, "", testNow.Add(time.Minute))
	c, _ := w.book.CancelByTherapist(id, testNow.Add(2*time.Minute))
	for _, step := range []struct {
		m    Message
		want ReservationState
	}{{hold, Gehalten}, {conf, Bestaetigt}, {c, StorniertTherapeut}} {
		sealedM, err := w.book.Seal(w.rand, id, step.m, testNow)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			got, err := w.patient.Open(sealedM, testNow.Add(3*time.Minute))
			if i == 0 && (err != nil || got.State != step.want) {
				t.Fatalf("%v: %v %v", step.want, got.State, err)
			}
			if now, _ := w.patient.Get(id); i == 1 && (err == nil || now.State != step.want) {
				t.Fatalf("second copy of %v: %v, state %v", step.want, err, now.State)
			}
		}
	}

	w2 := newResWorld(t)
	pr2, sealed2 := w2.request(t, testNow)
	w2.book.Open(sealed2, testNow)
	cancel, _ := w2.patient.Cancel(w2.rand, pr2.Request.ID, testNow)
	for i := range 2 {
		r, err := w2.book.Open(cancel, testNow)
		if (i == 0) != (err == nil) || r.State != StorniertPatient && i == 0 {
			t.Fatalf("patient cancel copy %d: %v %v", i, r.State, err)
		}
	}
	if r, _ := w2.book.Get(pr2.Request.ID); r.State != StorniertPatient {
		t.Fatalf("after two cancels: %v", r.State)
	}
}
