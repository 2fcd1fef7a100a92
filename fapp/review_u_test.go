package fapp

import (
	"errors"
	"testing"
	"time"
)

// TestTrimKeepsRivalDeclines: a hold declines the other requests for its
// place (DeclineRivals), and the node seals each decline after the call.
// Each decline ran through Expire, which forgets the oldest finished
// reservations beyond the bound: with the finished memory full, the second
// decline forgot the first (equal times, a smaller ID), whose answer was
// then never sealed (Seal: ErrNotFound). Finished ones are forgotten only
// at the start of a call.
func TestTrimKeepsRivalDeclines(t *testing.T) {
	f := newFloodWorld(t, 3)
	held := f.req(t, 1, f.start, 8, testNow)
	rivals := []*Request{f.req(t, 1, f.start, 8, testNow), f.req(t, 1, f.start, 8, testNow)}
	for _, q := range append([]*Request{held}, rivals...) {
		if _, err := f.receive(t, q, testNow); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // the finished memory is full, dated as the hold
		if _, _, err := f.book.Refuse(f.req(t, 2, f.start, 8, testNow), f.eph.Compact(), "", testNow); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.book.Hold(held.ID, testNow.Add(time.Hour), "", testNow); err != nil {
		t.Fatal(err)
	}
	resps, err := f.book.DeclineRivals(held.ID, "", testNow)
	if err != nil || len(resps) != 2 {
		t.Fatalf("DeclineRivals: %d responses, %v", len(resps), err)
	}
	for _, resp := range resps {
		if _, err := f.book.Seal(f.rand, resp.ID, resp, testNow); err != nil {
			t.Errorf("the decline of rival %v cannot be sealed: %v", resp.ID, err)
		}
	}
}

// restart returns a book as the therapist's node rebuilds it after a
// restart: the stored reservations restored, a fresh stamp verifier (the
// node does not store the spent stamps) and what the book says to keep
// across a restart (ForgotUntil).
func (f *floodWorld) restart(t *testing.T, maxRes int) *Book {
	t.Helper()
	b, err := NewBook(BookConfig{Identity: f.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}), MaxReservations: maxRes})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.book.List() {
		if err := b.Restore(r); err != nil {
			t.Fatal(err)
		}
	}
	b.RestoreForgotUntil(f.book.ForgotUntil())
	return b
}

// TestAttackReplayForgottenRequest: finished reservations beyond the bound
// are forgotten (and deleted from the store) while their requests could
// still be accepted. A relay that kept a patient's sealed request, which
// the therapist declined, floods the book with as many finished requests
// as the bound (refused ones will do), waits for a restart (the node does
// not store the spent stamps) and sends the request again: the book took
// it as new, ANGEFRAGT, for a patient who had the therapist's no. Now a
// book refuses a request made no later than the newest it forgot
// (ForgotUntil, which the node stores).
func TestAttackReplayForgottenRequest(t *testing.T) {
	f := newFloodWorld(t, 3)
	victim := f.req(t, 1, f.start, 8, testNow.Add(-time.Minute))
	if _, err := f.receive(t, victim, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := f.book.Decline(victim.ID, "", testNow); err != nil {
		t.Fatal(err)
	}
	later := testNow.Add(time.Minute)
	for range 3 {
		if _, _, err := f.book.Refuse(f.req(t, 2, f.start, 8, later), f.eph.Compact(), "", later); err != nil {
			t.Fatal(err)
		}
	}
	gone := f.book.Sweep(later)
	if len(gone) != 1 || gone[0] != victim.ID {
		t.Fatalf("Sweep forgot %v, want the victim's request", gone)
	}
	book := f.restart(t, 3)
	if r, err := book.Receive(victim, f.eph.Compact(), later.Add(time.Minute)); err == nil {
		t.Fatalf("the replayed forgotten request after a restart: %v, want refused", r.State)
	}
	// An honest request made after the forgotten ones still gets in.
	if r, err := book.Receive(f.req(t, 3, f.start, 8, later), f.eph.Compact(), later.Add(time.Minute)); err != nil || r.State != Angefragt {
		t.Fatalf("a new request after the restart: %v %v", r.State, err)
	}
}

// TestForgottenAgeRefusalAnswered: a book that forgot finished requests
// for room refuses any request made no later than the newest forgotten
// (it may be a replay). An honest request made before a flood of finished
// ones, still in custody while the flood arrived, was dropped without an
// answer (ErrReplay only): its patient waited a week. It is refused for
// the node to answer (ErrNotOffered and ErrLimit, as a full place: the
// patient asks again), and Refuse signs that answer once; a replay of the
// answered request is not answered again.
func TestForgottenAgeRefusalAnswered(t *testing.T) {
	f := newFloodWorld(t, 1)
	honest := f.req(t, 1, f.start, 8, testNow)
	for i := range 2 {
		at := testNow.Add(time.Duration(i+1) * time.Second)
		if _, _, err := f.book.Refuse(f.req(t, 2, f.start, 8, at), f.eph.Compact(), "", at); err != nil {
			t.Fatal(err)
		}
	}
	now := testNow.Add(time.Minute)
	f.book.Sweep(now)
	if !f.book.ForgotUntil().After(honest.Created) {
		t.Fatalf("ForgotUntil %v: the flood forgot nothing made after the honest request", f.book.ForgotUntil())
	}
	_, err := f.receive(t, honest, now)
	if !errors.Is(err, ErrNotOffered) || !errors.Is(err, ErrLimit) {
		t.Fatalf("a request made before the forgotten ones: %v, want ErrNotOffered and ErrLimit (answer it)", err)
	}
	r, resp, err := f.book.Refuse(honest, f.eph.Compact(), BusyNote(9), now)
	if err != nil || r.State != Abgelehnt || resp.Verify() != nil {
		t.Fatalf("Refuse of a request made before the forgotten ones: %v %v", r.State, err)
	}
	if _, _, err := f.book.Refuse(honest, f.eph.Compact(), "", now); !errors.Is(err, ErrReplay) {
		t.Errorf("a second Refuse of the same request: %v, want ErrReplay", err)
	}
}

// TestAttackForgotUntilFromTheFuture: a book refuses requests made no
// later than the newest one it forgot for room. An attacker dated a flood
// of finished requests as far ahead as the clock skew allows: once the
// book forgot one, it refused every honest request for the next ten
// minutes, whatever its stamp, and a flood kept up at that rate refused
// them for good. The mark counts a forgotten request no later than its
// arrival.
func TestAttackForgotUntilFromTheFuture(t *testing.T) {
	f := newFloodWorld(t, 2)
	ahead := testNow.Add(DefaultClockSkew)
	for range 3 {
		if _, _, err := f.book.Refuse(f.req(t, 2, f.start, 8, ahead), f.eph.Compact(), "", testNow); err != nil {
			t.Fatal(err)
		}
	}
	f.book.Sweep(testNow)
	now := testNow.Add(time.Second)
	if r, err := f.receive(t, f.req(t, 1, f.start, 8, now), now); err != nil || r.State != Angefragt {
		t.Fatalf("an honest request after a flood dated ahead: %v %v", r.State, err)
	}
}

// TestExpireAsksOccursOnlyForWaiting: Expire, which every call runs
// first, asked the node's Occurs (which copies the node's slots) for every
// reservation whose occurrence had started, finished ones included: after
// a flood of finished requests for a slot that then started, every call,
// even a stampless cancel's, asked it thousands of times. Only a waiting
// request can lapse for a started occurrence.
func TestExpireAsksOccursOnlyForWaiting(t *testing.T) {
	f := newFloodWorld(t, 10_000)
	asked := 0
	f.book.cfg.Occurs = func(uint16, time.Time) bool { asked++; return false }
	for range 20 {
		if _, _, err := f.book.Refuse(f.req(t, 1, f.start, 8, testNow), f.eph.Compact(), "", testNow); err != nil {
			t.Fatal(err)
		}
	}
	asked = 0
	f.book.Expire(f.start.Add(time.Minute))
	if asked != 0 {
		t.Errorf("Expire asked Occurs %d times for finished reservations, want 0", asked)
	}
}
