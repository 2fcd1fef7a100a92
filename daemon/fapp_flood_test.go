package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
)

// TestFAPPAttackFloodOneSlot: an anonymous attacker fills one of a
// therapist node's slots with stamped requests. Before, the book took them
// all (up to 10,000, and then nothing more for a week); now the place
// keeps fapp.DefaultMaxPerPlace of them, the next one at the same stamp
// work is answered ABGELEHNT (counted as requests_busy), and an honest
// patient who spends one bit more gets in and pushes one of the flood out:
// declined, stored, counted (requests_pushed_out).
func TestFAPPAttackFloodOneSlot(t *testing.T) {
	const floodBits = 8
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slot := th.fapp.pub.Slots()[0]
	// The node's book with 8-bit stamps (the node config has no setting
	// for the bits a therapist demands): 33 stamps of 20 bits cost the
	// test 14 CPU-seconds, and the rank is the same at any bits.
	book, err := fapp.NewBook(fapp.BookConfig{Identity: th.id, Offers: th.fapp.offersLocked, Occurs: th.fapp.occursLocked,
		Stamps: fapp.NewStampVerifier(fapp.StampConfig{MinBits: floodBits})})
	th.fapp.book = book
	th.fapp.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ref := slot.Ref(fapp.TherapistKeyOf(th.id.Compact()))
	attacker := fapp.NewPatientBook(fapp.PatientBookConfig{StampBits: floodBits})
	var flood []fapp.RequestID
	for range fapp.DefaultMaxPerPlace + 1 {
		flood = append(flood, sendRequest(t, ctx, th, attacker, ref, slot.Start, clk.Now()).Request.ID)
	}
	if st := bookState(th, flood[len(flood)-1]); st != fapp.Abgelehnt {
		t.Errorf("a request beyond the place's quota at equal work is %v, want ABGELEHNT (answered)", st)
	}
	honest := fapp.NewPatientBook(fapp.PatientBookConfig{StampBits: floodBits})
	r, sealed, err := honest.NewRequest(rand.Reader, th.id.Public(), ref, slot.Start,
		fapp.RequestOptions{StampBits: floodBits + 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	from := mustIdentity(t).Address()
	if err := th.call(ctx, func() { th.fapp.onDirect(from, append([]byte{toTherapist}, sealed...), 0) }); err != nil {
		t.Fatal(err)
	}
	if st := bookState(th, r.Request.ID); st != fapp.Angefragt {
		t.Fatalf("the honest request with one bit more is %v, want ANGEFRAGT", st)
	}
	out := flood[len(flood)-2] // the last of the flood that got in
	if st := bookState(th, out); st != fapp.Abgelehnt {
		t.Errorf("the flood's last request is %v, want ABGELEHNT (pushed out)", st)
	}
	v, err := th.st.FAPPGet(therapistResKey(out))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := decodeTherapistRes(v); err != nil || got.State != fapp.Abgelehnt {
		t.Errorf("stored record of the pushed-out request: %v %v", got.State, err)
	}
	st := th.fapp.stats.snapshot()
	if st["requests_busy"] != 1 || st["requests_pushed_out"] != 1 {
		t.Errorf("requests_busy %d, requests_pushed_out %d, want 1 and 1", st["requests_busy"], st["requests_pushed_out"])
	}
}

// TestFAPPAttackEarlyCancelFlood: a patient node's cancel overtook its
// request at the therapist and a flood of stampless cancels pushed it out
// of the therapist's book, which then took the request and held it. The
// patient node refused the hold and the therapist kept the slot GEHALTEN
// for a patient who had cancelled. Now the patient node stores and sends
// its cancel again (cancels_resent), and the therapist's book applies it.
func TestFAPPAttackEarlyCancelFlood(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	now := clk.Now()
	th := mustIdentity(t)
	book, err := fapp.NewBook(fapp.BookConfig{Identity: th})
	if err != nil {
		t.Fatal(err)
	}
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(th.Compact()), Slot: 1}
	start := now.Add(48 * time.Hour).Truncate(time.Minute)
	f.patMu.Lock()
	pr, sealedReq, err := f.patient.NewRequest(rand.Reader, th.Public(), ref, start, fapp.RequestOptions{}, now)
	if err != nil {
		f.patMu.Unlock()
		t.Fatal(err)
	}
	sealedCancel, err := f.patient.Cancel(rand.Reader, pr.Request.ID, now)
	f.patMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	book.Open(sealedCancel, now)
	flooder := mustIdentity(t)
	for i := range fapp.MaxEarlyCancels {
		c := &fapp.Cancel{Slot: ref, By: fapp.StorniertPatient, Created: now.Truncate(time.Second)}
		c.ID[0], c.ID[1], c.ID[15] = byte(i), byte(i>>8), 0xee
		if err := c.Sign(flooder); err != nil {
			t.Fatal(err)
		}
		book.ApplyCancel(c, flooder.Compact(), now)
	}
	if r, err := book.Open(sealedReq, now); err != nil || r.State != fapp.Angefragt {
		t.Fatalf("the request after its cancel was pushed out: %v %v", r.State, err)
	}
	hold, err := book.Hold(pr.Request.ID, now.Add(time.Hour), "", now)
	if err != nil {
		t.Fatal(err)
	}
	sealedHold, err := book.Seal(rand.Reader, pr.Request.ID, hold, now)
	if err != nil {
		t.Fatal(err)
	}
	before := storeKeys(t, n, keyOutbox)
	f.onDirect(th.Address(), append([]byte{toPatient}, sealedHold...), 0)
	if got := f.stats.snapshot()["cancels_resent"]; got != 1 {
		t.Fatalf("cancels_resent = %d, want 1", got)
	}
	var resent []byte
	n.st.FAPPScan(keyOutbox, func(_ string, v []byte) error {
		if len(v) > outboxHead && v[outboxHead] == toTherapist {
			resent = v[outboxHead+1:]
		}
		return nil
	})
	if storeKeys(t, n, keyOutbox) != before+1 || resent == nil {
		t.Fatal("the resent cancel is not in the outbox")
	}
	if r, err := book.Open(resent, now); err != nil || r.State != fapp.StorniertPatient {
		t.Errorf("the resent cancel at the therapist: %v %v", r.State, err)
	}
}
