package fapp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRecords(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	w.book.Open(sealed, testNow)
	conf, _ := w.book.Confirm(pr.Request.ID, "ok", testNow)
	got, err := w.deliver(t, pr.Request.ID, conf, testNow)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := got.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePatientReservation(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.State != Bestaetigt || *back.Confirmation != *got.Confirmation || back.Identity.Address() != got.Identity.Address() || back.Nachricht != "ok" {
		t.Fatalf("patient record round trip: %+v", back)
	}
	again, _ := back.MarshalBinary()
	if !bytes.Equal(again, raw) {
		t.Fatal("patient record re-encoding differs")
	}
	// The restored book goes on: the patient can still cancel.
	p2 := NewPatientBook(PatientBookConfig{})
	if err := p2.Restore(back); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Cancel(w.rand, pr.Request.ID, testNow); err != nil {
		t.Fatalf("cancel after restore: %v", err)
	}

	r, _ := w.book.Get(pr.Request.ID)
	rraw, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rback, err := ParseReservation(rraw)
	if err != nil || rback.State != Bestaetigt || rback.Request.ID != r.Request.ID || !rback.Received.Equal(r.Received.Truncate(time.Second)) {
		t.Fatalf("reservation record: %+v %v", rback, err)
	}
	for _, bad := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"trailing", append(bytes.Clone(rraw), 0), ErrTrailing},
		{"truncated", rraw[:len(rraw)-1], ErrTruncated},
		{"kind", append([]byte{1, kindPatientRecord}, rraw[2:]...), ErrUnknownVersion},
		{"state", append([]byte{1, kindReservationRecord, 9}, rraw[3:]...), ErrMalformed},
		{"held without hold time", append([]byte{1, kindReservationRecord, byte(Gehalten)}, rraw[3:]...), ErrMalformed},
	} {
		if _, err := ParseReservation(bad.raw); !errors.Is(err, bad.want) {
			t.Fatalf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	// A patient record whose identity is not the request's is refused.
	other := back
	other.Identity = testIdentity(t, 66)
	oraw, _ := other.MarshalBinary()
	if _, err := ParsePatientReservation(oraw); !errors.Is(err, ErrMismatch) {
		t.Fatalf("foreign identity: %v", err)
	}
}

func FuzzParseRecords(f *testing.F) {
	w := newResWorld(f)
	pr, sealed := w.request(f, testNow)
	w.book.Open(sealed, testNow)
	r, _ := w.book.Get(pr.Request.ID)
	raw, _ := r.MarshalBinary()
	f.Add(raw)
	praw, _ := pr.MarshalBinary()
	f.Add(praw)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseReservation(b); err == nil {
			if again, err := r.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("reservation record re-encoding differs: %v", err)
			}
		}
		if p, err := ParsePatientReservation(b); err == nil {
			if again, err := p.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("patient record re-encoding differs: %v", err)
			}
		}
	})
}
