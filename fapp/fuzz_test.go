package fapp

import (
	"bytes"
	"testing"
	"time"
)

// The fuzz targets feed arbitrary bytes to every decoder of outside input.
// Each must return an error or a value that re-encodes to the same bytes
// (the encodings are canonical), and never panic.

func FuzzParseSlotAnnounce(f *testing.F) {
	for _, n := range []int{0, 1, 4} {
		a := testAnnounce(f, n)
		f.Add(signed(f, 1, a))
	}
	w := testAnnounce(f, 0)
	w.Withdrawn = true
	f.Add(signed(f, 1, w))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAnnounce(b)
		if err != nil {
			return
		}
		again, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded announce does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
		// The full check must agree with the structural one or refuse.
		if got, err := ParseSlotAnnounce(b, a.Issued, 0); err == nil && got.Therapist != a.Therapist {
			t.Fatal("ParseSlotAnnounce disagrees with decodeAnnounce")
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	_, raw := testProfile(f, testIssuer(f, 50), 1, 7)
	f.Add(raw)
	f.Add(raw[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzParseCredential(f *testing.F) {
	raw, _ := testCredential(f, testIssuer(f, 50), 1, 7).MarshalBinary()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredential(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		NewTrustStore(testIssuer(t, 50).PublicKey()).Verify(c, testNow)
	})
}

func FuzzParseRevocation(f *testing.F) {
	is := testIssuer(f, 50)
	for _, s := range [][]uint64{nil, {1}, {3, 5, 1 << 60}} {
		r, _ := is.Revoke(1, testNow, s)
		raw, _ := r.MarshalBinary()
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRevocation(b)
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		NewTrustStore(is.PublicKey()).ApplyRevocation(r)
	})
}

func FuzzParseMessage(f *testing.F) {
	th := testIdentity(f, 1)
	eph := testIdentity(f, 2)
	slot := SlotRef{Therapist: TherapistKeyOf(th.Compact()), Slot: 1}
	q := &Request{ID: RequestID{1}, Slot: slot, Start: testNow.Add(time.Hour), Patient: eph.Public(), Created: testNow, Kontakt: "x"}
	raw, _ := q.MarshalBinary()
	f.Add(raw)
	resp := &Response{ID: q.ID, Slot: slot, State: Gehalten, HoldUntil: testNow.Add(time.Hour), Created: testNow, Nachricht: "ok"}
	resp.Sign(th)
	raw, _ = resp.MarshalBinary()
	f.Add(raw)
	c := &Cancel{ID: q.ID, Slot: slot, By: StorniertPatient, Created: testNow}
	c.Sign(eph)
	raw, _ = c.MarshalBinary()
	f.Add(raw)
	raw, _ = testRemoteQuery(f).MarshalBinary()
	f.Add(raw)
	ann := signed(f, 1, testAnnounce(f, 2))
	raw, _ = (&QueryAnswer{ID: QueryID{1}, Announces: [][]byte{ann}, Profiles: [][]byte{{1, 2, 3}}}).MarshalBinary()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		again, err := marshalMessage(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding of %T differs: %v", m, err)
		}
		if c, ok := m.(*Cancel); ok {
			c.Verify(eph.Compact())
		}
	})
}

// FuzzPatientOpen feeds arbitrary bytes to a patient book's Open, what a
// patient daemon does with every FAPP envelope addressed to it.
func FuzzPatientOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x10}, 200))
	p := NewPatientBook(PatientBookConfig{StampBits: 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := p.Open(b, testNow); err == nil {
			t.Fatal("opened a message for no reservation")
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{"10437", "mo-fr 17:00-21:00", "sa,so 09:00-12:30", "de", "GKV,PKV", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePLZ(s); err == nil && p.String() != s {
			t.Fatalf("PLZ %q parsed as %v", s, p)
		}
		if w, err := ParseTimeWindow(s); err == nil && w.check() != nil {
			t.Fatalf("time window %q parsed invalid: %+v", s, w)
		}
		ParseSprache(s)
		ParseSet(s, ParseKostentraeger)
		ParseRegion(s)
		CheckPLZPrefix(s)
		ParseRequestID(s)
		ParseIssuerKey(s)
	})
}

func FuzzParseIssuer(f *testing.F) {
	raw, _ := testIssuer(f, 50).MarshalBinary()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		is, err := ParseIssuer(b)
		if err != nil {
			return
		}
		again, _ := is.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzBookOpen feeds arbitrary bytes to a therapist's Book.Open, what a
// therapist's daemon does with every FAPP envelope addressed to it: no
// panic, and nothing but a well-sealed request with its stamp (a seed)
// lands in the book.
func FuzzBookOpen(f *testing.F) {
	w := newResWorld(f)
	pr, sealed := w.request(f, testNow)
	f.Add(sealed)
	if c, err := w.patient.Cancel(w.rand, pr.Request.ID, testNow); err == nil {
		f.Add(c)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x01}, 300))
	f.Fuzz(func(t *testing.T, b []byte) {
		book, err := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8})})
		if err != nil {
			t.Fatal(err)
		}
		r, err := book.Open(b, testNow)
		if err != nil {
			if len(book.List()) != 0 {
				t.Fatalf("refused (%v) but recorded", err)
			}
			return
		}
		if got, err := book.Get(r.Request.ID); err != nil || got.State != r.State {
			t.Fatalf("accepted but not in the book: %v", err)
		}
	})
}

func FuzzParseBusyNote(f *testing.F) {
	f.Add(BusyNote(21))
	f.Add("ausgelastet: stamp_bits=021")
	f.Add("")
	f.Fuzz(func(t *testing.T, note string) {
		bits, ok := ParseBusyNote(note)
		if ok && (bits == 0 || bits > MaxStampBits || BusyNote(bits) != note) {
			t.Fatalf("ParseBusyNote(%q) = %d, not canonical", note, bits)
		}
	})
}
