package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
)

// TestFAPPAttackRefusalDatesTheHold: the refusals wait for the next epoch
// boundary (TestFAPPAttackRefusalTimesTheHold), but they were signed and
// sealed at the second of the hold: a rival's decline said the hold's
// second in its signed Created and in its envelope's Created, and a refused
// request's said the second it came, so whoever keeps a request pending
// (or files one a minute) still learned the second the slot turned
// GEHALTEN, and with it which of the therapist's envelopes was the hold.
// Every held refusal must say no time before the boundary it waits for.
func TestFAPPAttackRefusalDatesTheHold(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := becomeTherapist(t, ctx, n, is, clk)
	f := n.fapp
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[0].ID}
	deliver := func(now time.Time) fapp.RequestID {
		pr, sealed, err := pb.NewRequest(randReader, n.id.Public(), ref, offer.Slots[0].Start, fapp.RequestOptions{}, now)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		b := store.FAPPBatch{Put: map[string][]byte{}}
		f.onTherapistMsgLocked(&b, mustIdentity(t).Address(), sealed, now)
		f.mu.Unlock()
		if err := f.write(b); err != nil {
			t.Fatal(err)
		}
		return pr.Request.ID
	}
	toEpochStart(clk, n)
	clk.advance(20 * time.Second) // the hold's second is not a boundary
	now := clk.Now()
	held, rival := deliver(now), deliver(now)
	f.mu.Lock()
	if _, err := f.respondLocked(held, decideHold, "", now.Add(time.Hour), now); err != nil {
		f.mu.Unlock()
		t.Fatal(err)
	}
	f.mu.Unlock()
	clk.advance(5 * time.Second)
	late := deliver(clk.Now()) // refused: the slot is held

	f.mu.Lock()
	later := append([]fappOut(nil), f.later...)
	f.mu.Unlock()
	if len(later) != 2 {
		t.Fatalf("%d refusals wait for the boundary, want 2 (the rival's, the late request's)", len(later))
	}
	for _, o := range later {
		boundary := o.notBefore.Truncate(time.Second)
		e, err := protocol.ParseEnvelope(o.body[1:])
		if err != nil {
			t.Fatal(err)
		}
		var got fapp.PatientReservation
		for _, id := range []fapp.RequestID{rival, late} {
			r, _ := pb.Get(id)
			if m, _, err := fapp.OpenMessage(r.Identity, o.body[1:], o.notBefore); err == nil {
				got = r
				resp := m.(*fapp.Response)
				if resp.Created.Before(boundary) {
					t.Errorf("a refusal held until %v is signed as made at %v", boundary, resp.Created)
				}
			}
		}
		if got.Identity == nil {
			t.Fatal("a held refusal opens for neither refused patient")
		}
		if e.Created.Time().Before(boundary) {
			t.Errorf("a refusal held until %v is sealed at %v", boundary, e.Created.Time())
		}
	}
}
