package fapp

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestTransitionTable checks every (state, event) pair: the allowed ones
// lead where the table says, every other one is refused.
func TestTransitionTable(t *testing.T) {
	allowed := map[string]ReservationState{
		"ANGEFRAGT/HOLD": Gehalten, "ANGEFRAGT/CONFIRM": Bestaetigt, "ANGEFRAGT/DECLINE": Abgelehnt,
		"ANGEFRAGT/EXPIRE": Abgelaufen, "ANGEFRAGT/CANCEL_PATIENT": StorniertPatient,
		"GEHALTEN/CONFIRM": Bestaetigt, "GEHALTEN/DECLINE": Abgelehnt, "GEHALTEN/EXPIRE": Abgelaufen,
		"GEHALTEN/CANCEL_PATIENT": StorniertPatient, "GEHALTEN/CANCEL_THERAPIST": StorniertTherapeut,
		"BESTAETIGT/CANCEL_PATIENT": StorniertPatient, "BESTAETIGT/CANCEL_THERAPIST": StorniertTherapeut,
	}
	n := 0
	for s := ReservationState(1); s.Valid(); s++ {
		for ev := Event(1); ev <= EventCancelTherapist; ev++ {
			name := fmt.Sprintf("%v/%v", s, ev)
			t.Run(name, func(t *testing.T) {
				to, err := Transition(s, ev)
				if want, ok := allowed[name]; ok {
					n++
					if err != nil || to != want {
						t.Fatalf("got %v %v, want %v", to, err, want)
					}
				} else if !errors.Is(err, ErrTransition) || to != s {
					t.Fatalf("forbidden transition gave %v %v", to, err)
				}
			})
		}
	}
	if n != len(allowed) {
		t.Fatalf("%d allowed transitions exercised, table has %d", n, len(allowed))
	}
	for s := ReservationState(1); s.Valid(); s++ {
		if s.Terminal() != (len(transitions[s]) == 0) {
			t.Fatalf("%v: Terminal %v but %d transitions", s, s.Terminal(), len(transitions[s]))
		}
	}
}

// resWorld is a therapist (identity 1) with a Book and a patient with a
// PatientBook, at a low stamp difficulty.
type resWorld struct {
	therapist *protocol.Identity
	book      *Book
	patient   *PatientBook
	slot      SlotRef
	start     time.Time
	rand      *seededReader
}

type seededReader = randReader

func newResWorld(t testing.TB) *resWorld {
	t.Helper()
	th := testIdentity(t, 1)
	book, err := NewBook(BookConfig{Identity: th, Stamps: NewStampVerifier(StampConfig{MinBits: 8})})
	if err != nil {
		t.Fatal(err)
	}
	return &resWorld{therapist: th, book: book, patient: NewPatientBook(PatientBookConfig{StampBits: 8}),
		slot: SlotRef{Therapist: keyOf(t, 1), Slot: 1}, start: BerlinTime(2026, 12, 3, 18, 0), rand: newRandReader(7)}
}

func (w *resWorld) request(t testing.TB, now time.Time) (PatientReservation, []byte) {
	t.Helper()
	pr, sealed, err := w.patient.NewRequest(w.rand, w.therapist.Public(), w.slot, w.start,
		RequestOptions{Kontakt: "Signal: +49 151 0000000", PTV11: "PTV11 vom 2026-11-30: Richtlinientherapie empfohlen"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return pr, sealed
}

// deliver seals m from the therapist and opens it at the patient.
func (w *resWorld) deliver(t *testing.T, id RequestID, m Message, now time.Time) (PatientReservation, error) {
	t.Helper()
	sealed, err := w.book.Seal(w.rand, id, m, now)
	if err != nil {
		t.Fatal(err)
	}
	return w.patient.Open(sealed, now)
}

func TestReservationPathway(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	if pr.State != Angefragt || pr.Identity == nil {
		t.Fatalf("patient side: %+v", pr)
	}
	t.Logf("sealed request: %d bytes", len(sealed))
	r, err := w.book.Open(sealed, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Angefragt || r.Request.Kontakt != "Signal: +49 151 0000000" || !r.Request.Start.Equal(w.start) {
		t.Fatalf("therapist side: %+v", r)
	}
	// A relay sees neither the contact nor the PTV 11 data.
	if bytes.Contains(sealed, []byte("Signal")) || bytes.Contains(sealed, []byte("PTV11")) {
		t.Fatal("request content visible in the sealed bytes")
	}
	id := pr.Request.ID
	hold, err := w.book.Hold(id, testNow.Add(48*time.Hour), "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.deliver(t, id, hold, testNow); err != nil || got.State != Gehalten || !got.HoldUntil.Equal(testNow.Add(48*time.Hour)) {
		t.Fatalf("hold at patient: %+v %v", got, err)
	}
	if st := w.book.SlotStatus(1, w.start); st != SlotGehalten {
		t.Fatalf("slot status while held: %v", st)
	}
	conf, err := w.book.Confirm(id, "Praxis Muster, Schönhauser Allee 1", testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.deliver(t, id, conf, testNow.Add(time.Hour))
	if err != nil || got.State != Bestaetigt || got.Confirmation == nil || got.Confirmation.Verify() != nil {
		t.Fatalf("confirmation at patient: %+v %v", got, err)
	}
	if st := w.book.SlotStatus(1, w.start); st != SlotVergeben {
		t.Fatalf("slot status when confirmed: %v", st)
	}
	cancel, err := w.patient.Cancel(w.rand, id, testNow.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.book.Open(cancel, testNow.Add(2*time.Hour)); err != nil || r.State != StorniertPatient {
		t.Fatalf("patient cancel at therapist: %+v %v", r, err)
	}
	if st := w.book.SlotStatus(1, w.start); st != SlotFrei {
		t.Fatalf("slot status after cancel: %v", st)
	}
}

func TestReservationTherapistCancelAndDecline(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	if _, err := w.book.Open(sealed, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.CancelByTherapist(pr.Request.ID, testNow); !errors.Is(err, ErrTransition) {
		t.Fatalf("therapist cancels a mere request: %v", err)
	}
	conf, _ := w.book.Confirm(pr.Request.ID, "", testNow)
	if _, err := w.deliver(t, pr.Request.ID, conf, testNow); err != nil {
		t.Fatal(err)
	}
	c, err := w.book.CancelByTherapist(pr.Request.ID, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.deliver(t, pr.Request.ID, c, testNow); err != nil || got.State != StorniertTherapeut {
		t.Fatalf("therapist cancel at patient: %+v %v", got, err)
	}
	pr2, sealed2 := w.request(t, testNow)
	if _, err := w.book.Open(sealed2, testNow); err != nil {
		t.Fatal(err)
	}
	d, err := w.book.Decline(pr2.Request.ID, "Leider schon vergeben", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.deliver(t, pr2.Request.ID, d, testNow); err != nil || got.State != Abgelehnt || got.Nachricht != "Leider schon vergeben" {
		t.Fatalf("decline at patient: %+v %v", got, err)
	}
	if _, err := w.book.Confirm(pr2.Request.ID, "", testNow); !errors.Is(err, ErrTransition) {
		t.Fatalf("confirm after decline: %v", err)
	}
}

func TestReservationHoldExpires(t *testing.T) {
	w := newResWorld(t)
	pr, sealed := w.request(t, testNow)
	w.book.Open(sealed, testNow)
	until := testNow.Add(time.Hour)
	hold, err := w.book.Hold(pr.Request.ID, until, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	w.deliver(t, pr.Request.ID, hold, testNow)
	if ch := w.book.Expire(until.Add(-time.Second)); len(ch) != 0 {
		t.Fatalf("expired early: %+v", ch)
	}
	ch := w.book.Expire(until)
	if len(ch) != 1 || ch[0].State != Abgelaufen {
		t.Fatalf("therapist expiry: %+v", ch)
	}
	if pch := w.patient.Expire(until); len(pch) != 1 || pch[0].State != Abgelaufen {
		t.Fatalf("patient expiry: %+v", pch)
	}
	if _, err := w.book.Confirm(pr.Request.ID, "", until); !errors.Is(err, ErrTransition) {
		t.Fatalf("confirm after the hold lapsed: %v", err)
	}
	if w.book.SlotStatus(1, w.start) != SlotFrei {
		t.Fatal("slot not free after the hold lapsed")
	}
	// An unanswered request lapses after the request TTL, and is then
	// forgotten; its replay is refused as expired.
	w2 := newResWorld(t)
	_, sealed2 := w2.request(t, testNow)
	w2.book.Open(sealed2, testNow)
	later := testNow.Add(DefaultRequestTTL + time.Second)
	if ch := w2.book.Expire(later); len(ch) != 1 || ch[0].State != Abgelaufen {
		t.Fatalf("request TTL: %+v", ch)
	}
	if gone := w2.book.Sweep(later); len(gone) != 1 || len(w2.book.List()) != 0 {
		t.Fatalf("lapsed request not forgotten: %v", gone)
	}
	if _, err := w2.book.Open(sealed2, later); !errors.Is(err, ErrExpired) {
		t.Fatalf("replay of a forgotten request: %v", err)
	}
}

// TestAttackReservationReplay: the same sealed request delivered twice (a
// relay or custodian replaying it) is refused the second time.
func TestAttackReservationReplay(t *testing.T) {
	w := newResWorld(t)
	_, sealed := w.request(t, testNow)
	if _, err := w.book.Open(sealed, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.Open(sealed, testNow.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed request: %v", err)
	}
	if n := len(w.book.List()); n != 1 {
		t.Fatalf("%d reservations after a replay", n)
	}
}

// TestAttackSecondHold: a second patient cannot get the same slot
// occurrence held or confirmed while another reservation holds it.
func TestAttackSecondHold(t *testing.T) {
	w := newResWorld(t)
	a, sa := w.request(t, testNow)
	b, sb := w.request(t, testNow)
	w.book.Open(sa, testNow)
	w.book.Open(sb, testNow)
	if _, err := w.book.Hold(a.Request.ID, testNow.Add(time.Hour), "", testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := w.book.Hold(b.Request.ID, testNow.Add(time.Hour), "", testNow); !errors.Is(err, ErrTransition) {
		t.Fatalf("second hold: %v", err)
	}
	if _, err := w.book.Confirm(b.Request.ID, "", testNow); !errors.Is(err, ErrTransition) {
		t.Fatalf("confirm over a hold: %v", err)
	}
}

// TestAttackForeignMessages: nobody but the patient can file a request in
// the patient's key or cancel it, and nobody but the therapist can answer.
func TestAttackForeignMessages(t *testing.T) {
	w := newResWorld(t)
	mallory := testIdentity(t, 66)
	pr, sealed := w.request(t, testNow)
	w.book.Open(sealed, testNow)

	// A request carrying the patient's key, sealed by mallory.
	q := pr.Request
	q.ID[0] ^= 1
	q.Stamp, _ = MintStamp(q.Slot, q.ID, 8, 0, testNow, 0)
	raw, _ := q.MarshalBinary()
	forged, _ := SealMessage(w.rand, mallory, w.therapist.Public(), raw, testNow, time.Hour)
	if _, err := w.book.Open(forged, testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("request in another's key: %v", err)
	}
	// A cancel of the patient's reservation by mallory.
	c := &Cancel{ID: pr.Request.ID, Slot: pr.Request.Slot, By: StorniertPatient, Created: testNow}
	c.Sign(mallory)
	raw, _ = c.MarshalBinary()
	forged, _ = SealMessage(w.rand, mallory, w.therapist.Public(), raw, testNow, time.Hour)
	if _, err := w.book.Open(forged, testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("cancel by mallory: %v", err)
	}
	if err := w.book.ApplyCancel(c, pr.Request.Patient.Compact(), testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cancel signed by mallory, claimed sender the patient: %v", err)
	}
	// A response "from the therapist" signed by mallory.
	resp := &Response{ID: pr.Request.ID, Slot: pr.Request.Slot, State: Bestaetigt, Created: testNow}
	raw, _ = resp.appendBody(nil)
	resp.Signature = [64]byte(mallory.Sign(labelResponse, raw))
	raw, _ = resp.MarshalBinary()
	forged, _ = SealMessage(w.rand, mallory, pr.Identity.Public(), raw, testNow, time.Hour)
	if _, err := w.patient.Open(forged, testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("response forged by mallory: %v", err)
	}
	// Mallory's own valid response for a slot of hers, sent to the patient.
	mresp := &Response{ID: pr.Request.ID, Slot: SlotRef{Therapist: TherapistKeyOf(mallory.Compact()), Slot: 1}, State: Bestaetigt, Created: testNow}
	mresp.Sign(mallory)
	if err := w.patient.ApplyResponse(mresp, testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("response for another therapist's slot: %v", err)
	}
	if got, _ := w.patient.Get(pr.Request.ID); got.State != Angefragt {
		t.Fatalf("state after the attacks: %v", got.State)
	}
	if got, _ := w.book.Get(pr.Request.ID); got.State != Angefragt {
		t.Fatalf("therapist state after the attacks: %v", got.State)
	}
}

func TestRequestRefusals(t *testing.T) {
	w := newResWorld(t)
	pr, _ := w.request(t, testNow)
	q := pr.Request
	sender := q.Patient.Compact()
	cases := []struct {
		name   string
		mutate func(q *Request)
		now    time.Time
		want   error
	}{
		{"other therapist", func(q *Request) { q.Slot.Therapist[0] ^= 1 }, testNow, ErrMismatch},
		{"from the future", func(q *Request) { q.Created = testNow.Add(time.Hour) }, testNow, ErrFromFuture},
		{"too old", func(q *Request) {}, testNow.Add(DefaultRequestTTL + time.Minute), ErrExpired},
		{"stamp for another slot", func(q *Request) { q.Slot.Slot = 2 }, testNow, ErrStamp},
		{"stamp for another request", func(q *Request) { q.ID[5] ^= 1 }, testNow, ErrStamp},
		{"stamp too cheap", func(q *Request) {
			q.Stamp, _ = MintStamp(q.Slot, q.ID, 4, 0, testNow, 0)
		}, testNow, ErrStamp},
		{"stamp claims more work than done", func(q *Request) { q.Stamp.Bits = 30 }, testNow, ErrStamp},
		{"stamp from another time", func(q *Request) { q.Stamp.Bucket -= 3 }, testNow, ErrStamp},
		{"contact too long", func(q *Request) { q.Kontakt = string(bytes.Repeat([]byte("x"), MaxKontaktLen+1)) }, testNow, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8})})
			q2 := q
			c.mutate(&q2)
			if _, err := b.Receive(&q2, sender, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestRequestWaitsInCustody: a request that reaches an offline therapist
// days later is still accepted (its stamp is judged by its creation time).
func TestRequestWaitsInCustody(t *testing.T) {
	w := newResWorld(t)
	_, sealed := w.request(t, testNow)
	if r, err := w.book.Open(sealed, testNow.Add(3*24*time.Hour)); err != nil || r.State != Angefragt {
		t.Fatalf("request after 3 days in custody: %+v %v", r, err)
	}
}

func TestMessageEncodings(t *testing.T) {
	w := newResWorld(t)
	pr, _ := w.request(t, testNow)
	raw, _ := pr.Request.MarshalBinary()
	m, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := m.(*Request)
	again, _ := q.MarshalBinary()
	if !bytes.Equal(raw, again) {
		t.Fatal("request re-encoding differs")
	}
	resp := &Response{ID: q.ID, Slot: q.Slot, State: Gehalten, HoldUntil: testNow.Add(time.Hour), Created: testNow}
	if err := resp.Sign(w.therapist); err != nil {
		t.Fatal(err)
	}
	rraw, _ := resp.MarshalBinary()
	if m, err := ParseMessage(rraw); err != nil || *m.(*Response) != *resp {
		t.Fatalf("response round trip: %+v %v", m, err)
	}
	flipEachBit(rraw, func(i int, c []byte) {
		if _, err := ParseMessage(c); err == nil {
			t.Fatalf("response bit %d flipped: accepted", i)
		}
	})
	for _, bad := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"unknown version", append([]byte{2}, raw[1:]...), ErrUnknownVersion},
		{"unknown kind", append([]byte{1, 9}, raw[2:]...), ErrUnknownVersion},
		{"trailing", append(bytes.Clone(raw), 0), ErrTrailing},
		{"truncated", raw[:len(raw)-1], ErrTruncated},
		{"oversized", make([]byte, MaxAnswerSize+1), ErrTooLarge},
		{"oversized request", append([]byte{1, KindRequest}, make([]byte, maxMessageSize)...), ErrTooLarge},
	} {
		if _, err := ParseMessage(bad.raw); !errors.Is(err, bad.want) {
			t.Fatalf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	for _, r := range []*Response{
		{ID: q.ID, Slot: q.Slot, State: Gehalten, Created: testNow},
		{ID: q.ID, Slot: q.Slot, State: Bestaetigt, HoldUntil: testNow.Add(time.Hour), Created: testNow},
		{ID: q.ID, Slot: q.Slot, State: Abgelaufen, Created: testNow},
	} {
		if err := r.Sign(w.therapist); err == nil {
			t.Fatalf("signed an impossible response %+v", r)
		}
	}
}

func TestStampVerifier(t *testing.T) {
	slot := SlotRef{Slot: 3}
	req := RequestID{1}
	s, err := MintStamp(slot, req, 12, 0, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := NewStampVerifier(StampConfig{MinBits: 12, MaxAge: time.Hour})
	if err := v.Verify(s, slot, req, testNow, testNow); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(s, slot, req, testNow, testNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("reuse: %v", err)
	}
	if err := NewStampVerifier(StampConfig{MinBits: 13}).Verify(s, slot, req, testNow, testNow); !errors.Is(err, ErrStamp) {
		t.Fatalf("too cheap: %v", err)
	}
	if err := NewStampVerifier(StampConfig{MinBits: 12, MaxAge: time.Hour}).Verify(s, slot, req, testNow, testNow.Add(2*time.Hour)); !errors.Is(err, ErrStamp) {
		t.Fatalf("stale: %v", err)
	}
	// Spent stamps are forgotten once they are too old to be accepted.
	v.Verify(s, slot, req, testNow, testNow.Add(2*time.Hour))
	if v.Len() != 0 {
		t.Fatalf("%d spent stamps remembered after their age", v.Len())
	}
	if _, err := MintStamp(slot, req, 30, 0, testNow, 10); !errors.Is(err, ErrLimit) {
		t.Fatalf("bounded minting: %v", err)
	}
	// Memory is bounded.
	small := NewStampVerifier(StampConfig{MinBits: 1, MaxEntries: 3})
	for i := range 10 {
		r := RequestID{byte(i)}
		st, _ := MintStamp(slot, r, 1, 0, testNow, 0)
		if err := small.Verify(st, slot, r, testNow, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if small.Len() != 3 {
		t.Fatalf("%d entries, bound 3", small.Len())
	}
}

func BenchmarkMintStamp(b *testing.B) {
	slot := SlotRef{Slot: 3}
	var i uint64
	for b.Loop() {
		i++
		req := RequestID{byte(i), byte(i >> 8), byte(i >> 16)}
		if _, err := MintStamp(slot, req, DefaultStampBits, 0, testNow, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOpenMessageRefusals(t *testing.T) {
	w := newResWorld(t)
	_, sealed := w.request(t, testNow)
	if _, _, err := OpenMessage(w.therapist, sealed, testNow.Add(DefaultMessageTTL)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired envelope: %v", err)
	}
	if _, _, err := OpenMessage(w.therapist, sealed, testNow.Add(-time.Hour)); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("envelope from the future: %v", err)
	}
	if _, _, err := OpenMessage(testIdentity(t, 66), sealed, testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("envelope for someone else: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, _, err := OpenMessage(w.therapist, tampered, testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered envelope: %v", err)
	}
	if _, _, err := OpenMessage(w.therapist, []byte{1, 2, 3}, testNow); !errors.Is(err, ErrMalformed) {
		t.Fatalf("junk: %v", err)
	}
}

func TestBookSweep(t *testing.T) {
	w := newResWorld(t)
	a, sa := w.request(t, testNow)
	b, sb := w.request(t, testNow)
	w.book.Open(sa, testNow)
	w.book.Open(sb, testNow)
	w.book.Confirm(a.Request.ID, "", testNow)
	w.book.Decline(b.Request.ID, "", testNow)
	if gone := w.book.Sweep(testNow.Add(DefaultRequestTTL)); len(gone) != 0 {
		t.Fatalf("swept too early: %v", gone)
	}
	// The declined one goes after the request TTL; the confirmed one after
	// its appointment plus the TTL.
	if gone := w.book.Sweep(testNow.Add(DefaultRequestTTL + time.Second)); len(gone) != 1 || gone[0] != b.Request.ID {
		t.Fatalf("first sweep: %v", gone)
	}
	if gone := w.book.Sweep(w.start.Add(DefaultRequestTTL + time.Second)); len(gone) != 1 || gone[0] != a.Request.ID {
		t.Fatalf("second sweep: %v", gone)
	}
}
