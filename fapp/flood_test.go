package fapp

import (
	"errors"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// floodWorld is a therapist's book with a small bound, and an attacker
// that makes stamped requests directly (one ephemeral key for all: the
// book does not ask for a new one per request, and key generation would
// only slow the test).
type floodWorld struct {
	*resWorld
	eph *protocol.Identity
	n   byte
}

func newFloodWorld(t *testing.T, maxRes int) *floodWorld {
	t.Helper()
	w := newResWorld(t)
	book, err := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}), MaxReservations: maxRes})
	if err != nil {
		t.Fatal(err)
	}
	w.book = book
	return &floodWorld{resWorld: w, eph: testIdentity(t, 9)}
}

// req makes a request for slot at start with a stamp of bits, from the
// attacker's key; the request ID counts up.
func (f *floodWorld) req(t *testing.T, slot uint16, start time.Time, bits uint8, now time.Time) *Request {
	t.Helper()
	f.n++
	q := &Request{Slot: SlotRef{Therapist: f.slot.Therapist, Slot: slot}, Start: start, Patient: f.eph.Public(),
		Created: now.Truncate(time.Second)}
	q.ID[0], q.ID[1] = f.n, byte(slot)
	q.ID[2] = bits
	var err error
	if q.Stamp, err = MintStamp(q.Slot, q.ID, bits, DefaultStampBucket, q.Created, 1<<30); err != nil {
		t.Fatal(err)
	}
	return q
}

func (f *floodWorld) receive(t *testing.T, q *Request, now time.Time) (Reservation, error) {
	t.Helper()
	return f.book.Receive(q, f.eph.Compact(), now)
}

// TestAttackFloodFillsBook: anyone with stamps fills the therapist's book
// with requests for one slot, and every later request, an honest one for
// another slot included, was dropped unanswered (ErrLimit) for the
// requests' week. Now a flood aimed at one place fills that place's quota
// only: the other slots stay open at the default stamp.
func TestAttackFloodFillsBook(t *testing.T) {
	f := newFloodWorld(t, 40)
	for i := 0; i < 40; i++ {
		f.receive(t, f.req(t, 1, f.start, 8, testNow), testNow)
	}
	honest := f.req(t, 2, f.start.Add(time.Hour), 8, testNow)
	if r, err := f.receive(t, honest, testNow); err != nil || r.State != Angefragt {
		t.Fatalf("an honest request for another slot after a flood of one: %+v %v", r.State, err)
	}
}

// TestAttackFinishedFillBook: refused requests (a slot not on offer, which
// the therapist's node answers with Refuse) stay in the book as ABGELEHNT
// and counted against its room as much as live ones: a flood of them
// locked out every later request. Finished reservations no longer take a
// live request's room; the oldest of them go when there are too many
// (Sweep returns them, for the store).
func TestAttackFinishedFillBook(t *testing.T) {
	f := newFloodWorld(t, 20)
	for i := 0; i < 50; i++ {
		// One a second: the book refuses a request made no later than
		// one it forgot (ForgotUntil).
		at := testNow.Add(time.Duration(i) * time.Second)
		if _, _, err := f.book.Refuse(f.req(t, uint16(100+i), f.start, 8, at), f.eph.Compact(), "", at); err != nil {
			t.Fatal(err)
		}
	}
	now := testNow.Add(50 * time.Second)
	if r, err := f.receive(t, f.req(t, 2, f.start, 8, now), now); err != nil || r.State != Angefragt {
		t.Fatalf("an honest request after a flood of refused ones: %+v %v", r.State, err)
	}
	if n := len(f.book.List()); n > 21 {
		t.Errorf("the book holds %d reservations, want at most the bound (20) of finished ones and the live one", n)
	}
	gone := f.book.Sweep(now)
	if len(gone) != 30 {
		t.Errorf("Sweep returned %d forgotten finished reservations, want 30", len(gone))
	}
}

// TestAttackFloodOutbidden: a flood of one place at the least stamp fills
// its quota; an honest patient at the same stamp is refused with an
// answer (ErrNotOffered, so the node answers ABGELEHNT: it can ask again
// with more work), not dropped unanswered; with one bit more it gets in
// and pushes out one of the flood, which is declined with a signed
// response (TakeDeclined).
func TestAttackFloodOutbidden(t *testing.T) {
	f := newFloodWorld(t, 10_000)
	for i := 0; i < DefaultMaxPerPlace+10; i++ {
		f.receive(t, f.req(t, 1, f.start, 8, testNow), testNow)
	}
	if n := len(f.book.List()); n != DefaultMaxPerPlace {
		t.Fatalf("one place holds %d requests, want the quota %d", n, DefaultMaxPerPlace)
	}
	if _, err := f.receive(t, f.req(t, 1, f.start, 8, testNow), testNow); !errors.Is(err, ErrNotOffered) || !errors.Is(err, ErrLimit) {
		t.Fatalf("a request at the same stamp for a full place: %v, want ErrNotOffered and ErrLimit", err)
	}
	honest := f.req(t, 1, f.start, 9, testNow)
	if got := f.book.StampToGetIn(honest); got != 9 {
		t.Errorf("StampToGetIn = %d, want 9 (the flood's 8 and one)", got)
	}
	if got := f.book.StampToGetIn(f.req(t, 2, f.start.Add(time.Hour), 8, testNow)); got != 0 {
		t.Errorf("StampToGetIn of a free place = %d, want 0", got)
	}
	if r, err := f.receive(t, honest, testNow); err != nil || r.State != Angefragt {
		t.Fatalf("an honest request with one bit more: %+v %v", r.State, err)
	}
	declined := f.book.TakeDeclined()
	if len(declined) != 1 || declined[0].State != Abgelehnt || declined[0].Verify() != nil {
		t.Fatalf("pushed out: %+v, want one signed ABGELEHNT", declined)
	}
	if bits, ok := ParseBusyNote(declined[0].Nachricht); !ok || bits != 9 {
		t.Errorf("the pushed-out patient is told %q, want the 9 bits that get in now", declined[0].Nachricht)
	}
	if r, _ := f.book.Get(declined[0].ID); r.State != Abgelehnt || r.Request.Stamp.Bits != 8 {
		t.Errorf("pushed out %+v, want one of the flood's 8-bit requests", r)
	}
	if len(f.book.TakeDeclined()) != 0 {
		t.Error("TakeDeclined returned the same responses twice")
	}
	// The flood must now outbid the honest request to push it out: equal
	// work keeps the one that came first.
	for i := 0; i < DefaultMaxPerPlace; i++ {
		f.receive(t, f.req(t, 1, f.start, 9, testNow), testNow)
	}
	if r, _ := f.book.Get(honest.ID); r.State != Angefragt {
		t.Errorf("the honest request after a flood at equal work: %v", r.State)
	}
}

// TestAttackFloodManyPlaces: a flood spread over many places fills the
// whole book; a request with more work than the weakest still gets in.
func TestAttackFloodManyPlaces(t *testing.T) {
	f := newFloodWorld(t, 30)
	for i := 0; i < 30; i++ {
		f.receive(t, f.req(t, uint16(10+i), f.start, 8, testNow), testNow)
	}
	if _, err := f.receive(t, f.req(t, 2, f.start, 8, testNow), testNow); !errors.Is(err, ErrNotOffered) {
		t.Fatalf("equal work on a full book: %v, want a refusal to answer", err)
	}
	if r, err := f.receive(t, f.req(t, 2, f.start, 9, testNow), testNow); err != nil || r.State != Angefragt {
		t.Fatalf("more work on a full book: %+v %v", r.State, err)
	}
	if n := len(f.book.TakeDeclined()); n != 1 {
		t.Errorf("%d pushed out, want 1", n)
	}
}

// TestAttackFloodStartedSlot: a request for an occurrence that has started
// can no longer be given: it lapses then, not a week after it was made.
func TestAttackFloodStartedSlot(t *testing.T) {
	f := newFloodWorld(t, 10_000)
	q := f.req(t, 1, f.start, 8, testNow)
	f.receive(t, q, testNow)
	f.book.Expire(f.start.Add(time.Second))
	if r, _ := f.book.Get(q.ID); r.State != Abgelaufen {
		t.Errorf("a request for a started occurrence: %v, want ABGELAUFEN", r.State)
	}
}

// TestAttackEarlyCancelFlood: a patient's cancel overtakes its request;
// an attacker then sends MaxEarlyCancels cancels for random IDs (they need
// no stamp), which push the patient's out of the book's bound, so the
// request arrives ANGEFRAGT and the therapist holds it for a patient who
// cancelled. Before, nothing undid that: the patient's book refused the
// hold and the slot stayed GEHALTEN. Now the patient's book seals its
// cancel again for the therapist (CancelsToResend), which applies it to
// the request it now has; a replay of the hold makes no second one.
func TestAttackEarlyCancelFlood(t *testing.T) {
	w := newResWorld(t)
	pr, sealedReq := w.request(t, testNow)
	cancel, err := w.patient.Cancel(w.rand, pr.Request.ID, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.Open(cancel, testNow); !errors.Is(err, ErrNotFound) || !w.book.HasEarly(pr.Request.ID) {
		t.Fatalf("the early cancel: %v", err)
	}
	eph := testIdentity(t, 9)
	for i := range MaxEarlyCancels {
		c := &Cancel{Slot: w.slot, By: StorniertPatient, Created: testNow}
		c.ID[0], c.ID[1], c.ID[15] = byte(i), byte(i>>8), 0xee
		if err := c.Sign(eph); err != nil {
			t.Fatal(err)
		}
		w.book.ApplyCancel(c, eph.Compact(), testNow)
	}
	if w.book.HasEarly(pr.Request.ID) {
		t.Fatal("the flood did not push the patient's cancel out: the test floods too little")
	}
	r, err := w.book.Open(sealedReq, testNow)
	if err != nil || r.State != Angefragt {
		t.Fatalf("the request after its cancel was pushed out: %v %v", r.State, err)
	}
	hold, err := w.book.Hold(pr.Request.ID, testNow.Add(time.Hour), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	sealedHold, err := w.book.Seal(w.rand, pr.Request.ID, hold, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.patient.Open(sealedHold, testNow); !errors.Is(err, ErrTransition) {
		t.Fatalf("a hold of a cancelled reservation at the patient: %v", err)
	}
	again, err := w.patient.CancelsToResend(w.rand, testNow)
	if err != nil || len(again) != 1 || again[0].ID != pr.Request.ID {
		t.Fatalf("cancels to resend: %+v %v", again, err)
	}
	if r, err := w.book.Open(again[0].Sealed, testNow); err != nil || r.State != StorniertPatient {
		t.Fatalf("the resent cancel at the therapist: %v %v", r.State, err)
	}
	if st := w.book.SlotStatus(1, w.start); st != SlotFrei {
		t.Errorf("the slot is %v after the resent cancel", st)
	}
	w.patient.Open(sealedHold, testNow) // a replay
	if again, _ := w.patient.CancelsToResend(w.rand, testNow); len(again) != 0 {
		t.Errorf("a replayed hold made %d more cancels", len(again))
	}
}

func TestBusyNote(t *testing.T) {
	for _, bits := range []uint8{1, 21, MaxStampBits} {
		if got, ok := ParseBusyNote(BusyNote(bits)); !ok || got != bits {
			t.Errorf("ParseBusyNote(BusyNote(%d)) = %d %v", bits, got, ok)
		}
	}
	for _, note := range []string{"", "Praxis Muster", BusyNote(0), "ausgelastet: stamp_bits=41", "ausgelastet: stamp_bits=-1", "ausgelastet: stamp_bits=2x"} {
		if _, ok := ParseBusyNote(note); ok {
			t.Errorf("ParseBusyNote(%q) accepted", note)
		}
	}
}

// TestBookRestoreBounds: a restart restores live reservations up to the
// bound and finished ones beyond it, the oldest of which the next Sweep
// forgets (and returns, for the store).
func TestBookRestoreBounds(t *testing.T) {
	f := newFloodWorld(t, 3)
	restored, err := NewBook(BookConfig{Identity: f.therapist, MaxReservations: 3})
	if err != nil {
		t.Fatal(err)
	}
	var done []RequestID
	for i := range 5 {
		q := f.req(t, uint16(i+1), f.start, 8, testNow)
		at := testNow.Add(time.Duration(i) * time.Minute)
		if err := restored.Restore(Reservation{Request: *q, State: Abgelehnt, Received: at, Updated: at}); err != nil {
			t.Fatal(err)
		}
		done = append(done, q.ID)
	}
	for i := range 4 {
		q := f.req(t, uint16(i+10), f.start, 8, testNow)
		err := restored.Restore(Reservation{Request: *q, State: Angefragt, Received: testNow, Updated: testNow})
		if (i < 3) != (err == nil) || (err != nil && !errors.Is(err, ErrLimit)) {
			t.Errorf("live reservation %d restored: %v", i, err)
		}
	}
	gone := restored.Sweep(testNow)
	if len(gone) != 2 || !slices.Contains(gone, done[0]) || !slices.Contains(gone, done[1]) {
		t.Errorf("Sweep after the restore forgot %v, want the two oldest finished %v %v", gone, done[0], done[1])
	}
	if n := len(restored.List()); n != 6 {
		t.Errorf("%d reservations after the sweep, want 3 live and 3 finished", n)
	}
}

// TestFullPlaceCancelledArrival: a request whose cancel came first
// arrives cancelled: it takes no room, so it neither is refused for a full
// place nor pushes a waiting request out.
func TestFullPlaceCancelledArrival(t *testing.T) {
	f := newFloodWorld(t, 10_000)
	for range DefaultMaxPerPlace {
		f.receive(t, f.req(t, 1, f.start, 8, testNow), testNow)
	}
	q := f.req(t, 1, f.start, 9, testNow)
	c := &Cancel{ID: q.ID, Slot: q.Slot, By: StorniertPatient, Created: testNow}
	if err := c.Sign(f.eph); err != nil {
		t.Fatal(err)
	}
	f.book.ApplyCancel(c, f.eph.Compact(), testNow)
	if r, err := f.receive(t, q, testNow); err != nil || r.State != StorniertPatient {
		t.Fatalf("the cancelled request: %v %v", r.State, err)
	}
	if n := len(f.book.TakeDeclined()); n != 0 {
		t.Errorf("a cancelled arrival pushed %d out", n)
	}
}
