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

// TestBookDeclineRivals: once a reservation holds its slot occurrence, the
// other requests for it still ANGEFRAGT are declined with signed responses;
// a request for another occurrence stays.
func TestBookDeclineRivals(t *testing.T) {
	w := newResWorld(t)
	a, sa := w.request(t, testNow)
	b, sb := w.request(t, testNow)
	w.start = w.start.Add(7 * 24 * time.Hour)
	c, sc := w.request(t, testNow)
	for _, s := range [][]byte{sa, sb, sc} {
		if _, err := w.book.Open(s, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := w.book.DeclineRivals(a.Request.ID, "", testNow); err != nil || len(got) != 0 {
		t.Fatalf("rivals of a request that holds nothing: %v %v", got, err)
	}
	if _, err := w.book.Hold(a.Request.ID, testNow.Add(time.Hour), "", testNow); err != nil {
		t.Fatal(err)
	}
	got, err := w.book.DeclineRivals(a.Request.ID, "", testNow)
	if err != nil || len(got) != 1 || got[0].ID != b.Request.ID || got[0].State != Abgelehnt {
		t.Fatalf("rivals declined: %+v %v", got, err)
	}
	if pr, err := w.deliver(t, b.Request.ID, got[0], testNow); err != nil || pr.State != Abgelehnt {
		t.Fatalf("the rival patient's book: %+v %v", pr, err)
	}
	if r, _ := w.book.Get(c.Request.ID); r.State != Angefragt {
		t.Fatalf("a request for another occurrence: %v", r.State)
	}
}
