package fapp

import (
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
