package fapp

import (
	"errors"
	"testing"
	"time"
)

// TestBookRefuseNotOffered: a request for a slot that is not on offer (it
// was just taken) is answered with a signed ABGELEHNT the patient's book
// accepts, instead of no answer at all; a replay of it, a request with a
// bad stamp and one not sealed by its patient key get no answer.
func TestBookRefuseNotOffered(t *testing.T) {
	w := newResWorld(t)
	taken := func(uint16, time.Time) error { return ErrNotFound }
	book, err := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}), Offers: taken})
	if err != nil {
		t.Fatal(err)
	}
	w.book = book
	pr, sealed := w.request(t, testNow)
	if _, err := book.Open(sealed, testNow); !errors.Is(err, ErrNotOffered) {
		t.Fatalf("request for a taken slot: %v, want ErrNotOffered", err)
	}
	m, sender, err := OpenMessage(w.therapist, sealed, testNow)
	if err != nil {
		t.Fatal(err)
	}
	q := m.(*Request)

	forged := *q
	if _, _, err := book.Refuse(&forged, testIdentity(t, 9).Compact(), "", testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("refusing a request not sealed by its patient: %v, want ErrMismatch", err)
	}
	cheap := *q
	cheap.Stamp.Bits = 0
	if _, _, err := book.Refuse(&cheap, sender, "", testNow); !errors.Is(err, ErrStamp) {
		t.Fatalf("refusing a request with a bad stamp: %v, want ErrStamp", err)
	}

	r, resp, err := book.Refuse(q, sender, "", testNow)
	if err != nil || r.State != Abgelehnt || resp.State != Abgelehnt || resp.ID != pr.Request.ID {
		t.Fatalf("refuse: %+v %+v %v", r, resp, err)
	}
	if got, err := w.deliver(t, q.ID, resp, testNow); err != nil || got.State != Abgelehnt {
		t.Fatalf("the patient's book after the refusal: %+v %v", got, err)
	}
	if _, err := book.Open(sealed, testNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed request: %v, want ErrReplay", err)
	}
	if _, _, err := book.Refuse(q, sender, "", testNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("refusing a replay: %v, want ErrReplay", err)
	}
}
