package fapp

import (
	"errors"
	"testing"
	"time"
)

// TestAttackEarlyCancelFromTheFuture: a kept early cancel is dated at its
// own Created when that is earlier than its arrival, so that the daemon,
// which applies it again after every restart (it stays in the inbox), does
// not keep it a lifetime longer each time. A cancel dated in the future
// (anyone can make one for a random ID: it needs no stamp) was dated at its
// arrival instead, every time: applied again after a restart it started a
// new lifetime, and a node restarted weekly kept it, and its inbox entry,
// for good. A cancel from beyond the clock skew is refused, not kept.
func TestAttackEarlyCancelFromTheFuture(t *testing.T) {
	w := newResWorld(t)
	eph := testIdentity(t, 2)
	c := &Cancel{Slot: w.slot, By: StorniertPatient, Created: testNow.Add(365 * 24 * time.Hour)}
	c.ID[0] = 7
	if err := c.Sign(eph); err != nil {
		t.Fatal(err)
	}
	err := w.book.ApplyCancel(c, eph.Compact(), testNow)
	if !errors.Is(err, ErrFromFuture) || w.book.HasEarly(c.ID) {
		t.Fatalf("a cancel dated a year ahead: %v, kept %v", err, w.book.HasEarly(c.ID))
	}
	// What a restart a week later does with it: the same cancel again.
	later := testNow.Add(DefaultRequestTTL + 2*DefaultClockSkew)
	restarted, err := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8})})
	if err != nil {
		t.Fatal(err)
	}
	restarted.ApplyCancel(c, eph.Compact(), later)
	if restarted.HasEarly(c.ID) {
		t.Error("a cancel dated in the future is kept again a request lifetime after it came")
	}
	// Within the clock skew it is kept, dated at its arrival.
	c2 := &Cancel{Slot: w.slot, By: StorniertPatient, Created: testNow.Add(DefaultClockSkew / 2)}
	c2.ID[0] = 8
	c2.Sign(eph)
	w.book.ApplyCancel(c2, eph.Compact(), testNow)
	if !w.book.HasEarly(c2.ID) {
		t.Error("a cancel within the clock skew was not kept")
	}
}
