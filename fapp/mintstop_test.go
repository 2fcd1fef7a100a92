package fapp

import (
	"errors"
	"slices"
	"testing"
)

// TestMintStampUntilStops: a mint at the highest difficulty (2^40
// expected hashes, hours of CPU) stops at the first check after its stop
// says so. The checks see the nonces tried so far, which is the work
// done: it is given up after 3 * StampCheckEvery hashes, not after a
// stamp.
func TestMintStampUntilStops(t *testing.T) {
	slot, req := SlotRef{Slot: 3}, RequestID{9}
	var seen []uint64
	stop := func(tried uint64) bool {
		seen = append(seen, tried)
		return tried >= 3*StampCheckEvery
	}
	_, err := MintStampUntil(slot, req, MaxStampBits, 0, testNow, 0, stop)
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("a mint its caller gave up: %v, want ErrStopped", err)
	}
	if want := []uint64{0, StampCheckEvery, 2 * StampCheckEvery, 3 * StampCheckEvery}; !slices.Equal(seen, want) {
		t.Fatalf("stop checks after %v tries, want %v", seen, want)
	}
	// Given up before the first nonce: no work at all.
	seen = nil
	if _, err := MintStampUntil(slot, req, MaxStampBits, 0, testNow, 0, func(tried uint64) bool {
		seen = append(seen, tried)
		return true
	}); !errors.Is(err, ErrStopped) || !slices.Equal(seen, []uint64{0}) {
		t.Fatalf("a mint given up at once: %v after checks %v", err, seen)
	}
}

// TestMintStampUntilSameStamp: a stop check that never stops changes
// nothing: the same stamp as MintStamp, and maxTries still bounds the
// work (ErrLimit, not ErrStopped).
func TestMintStampUntilSameStamp(t *testing.T) {
	slot, req := SlotRef{Slot: 3}, RequestID{1}
	want, err := MintStamp(slot, req, 14, 0, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	checks := 0
	got, err := MintStampUntil(slot, req, 14, 0, testNow, 0, func(uint64) bool { checks++; return false })
	if err != nil || got != want {
		t.Fatalf("with a stop check: %+v %v, want %+v", got, err, want)
	}
	if want := int(want.Nonce/StampCheckEvery) + 1; checks != want {
		t.Fatalf("%d stop checks for nonce %d, want %d", checks, got.Nonce, want)
	}
	if _, err := MintStampUntil(slot, req, MaxStampBits, 0, testNow, 10, func(uint64) bool { return false }); !errors.Is(err, ErrLimit) {
		t.Fatalf("bounded minting with a stop check: %v, want ErrLimit", err)
	}
}

// TestPrepareStopped: a request whose stamp is given up is not made, and
// the book is as before: the next request is made and added as usual.
func TestPrepareStopped(t *testing.T) {
	w := newResWorld(t)
	_, err := w.patient.Prepare(w.rand, w.therapist.Public(), w.slot, w.start, RequestOptions{StampBits: MaxRequestStampBits}, testNow,
		func(tried uint64) bool { return tried >= StampCheckEvery })
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("a request whose stamp was given up: %v, want ErrStopped", err)
	}
	if n := len(w.patient.List()); n != 0 {
		t.Fatalf("%d reservations after a given-up request, want 0", n)
	}
	w.request(t, testNow)
	if n := len(w.patient.List()); n != 1 {
		t.Fatalf("%d reservations after the request made again, want 1", n)
	}
}
