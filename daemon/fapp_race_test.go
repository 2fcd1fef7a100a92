package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// TestFAPPRaceBothPending: two patients ask for one slot before the
// therapist decides. When the therapist holds one, the other request can
// never be held or confirmed (Book refuses a second hold): the therapist's
// node answers it ABGELEHNT (at its next epoch boundary) instead of leaving it ANGEFRAGT until
// it lapses a week later.
func TestFAPPRaceBothPending(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	find := func(n *Node) string {
		var ref string
		waitFAPP(t, ctx, n, "the patient node finds the slot", func() bool {
			res, _ := n.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}, LocalOnly: true})
			if len(res.Matches) == 1 && res.Matches[0].Name != "" {
				ref = res.Matches[0].Ref
				return true
			}
			return false
		})
		return ref
	}
	refA, refB := find(tr.pat), find(tr.relay)
	thEv, cancelTh, _ := tr.th.Subscribe(ctx)
	defer cancelTh()
	aEv, cancelA, _ := tr.pat.Subscribe(ctx)
	defer cancelA()
	bEv, cancelB, _ := tr.relay.Subscribe(ctx)
	defer cancelB()
	resA, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refA})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := tr.relay.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refB})
	if err != nil {
		t.Fatal(err)
	}
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	until := tr.clk.Now().Add(24 * time.Hour).Truncate(time.Second)
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: resA.ID, Action: "hold", Until: until}); err != nil || r.State != "GEHALTEN" {
		t.Fatalf("hold: %+v %v", r, err)
	}
	waitReservation(t, ctx, aEv, "GEHALTEN")
	// The rival's answer waits for the therapist's next boundary
	// (TestFAPPAttackRefusalTimesTheHold).
	tr.clk.advance(fappTestEpoch)
	tr.th.fapp.poke()
	if r := waitReservation(t, ctx, bEv, "ABGELEHNT"); r.ID != resB.ID {
		t.Fatalf("the second patient got %+v, want ABGELEHNT for %s", r, resB.ID)
	}
}

// TestFAPPAttackRefusalTimesTheHold: a second patient (or anyone who
// spends a stamp) files a request for a slot and waits. When the therapist
// holds another patient's request, the node declined the rival at once,
// and a request for the held slot was refused at once: the rival learned
// the second the slot turned GEHALTEN, which the announce shows only at the
// next epoch boundary, and with it which of the therapist's envelopes that
// second was the hold (the batching of section 10 undone). The refusals now
// wait for the therapist's next boundary, where the announce shows the
// status anyway; the held patient's own answer still goes at once.
func TestFAPPAttackRefusalTimesTheHold(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	var ref string
	waitFAPP(t, ctx, tr.pat, "the patient node finds the slot", func() bool {
		res, _ := tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}, LocalOnly: true})
		if len(res.Matches) == 1 && res.Matches[0].Name != "" {
			ref = res.Matches[0].Ref
			return true
		}
		return false
	})
	thEv, cancelTh, _ := tr.th.Subscribe(ctx)
	defer cancelTh()
	patEv, cancelPat, _ := tr.pat.Subscribe(ctx)
	defer cancelPat()
	resA, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref})
	if err != nil {
		t.Fatal(err)
	}
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	id, _ := fapp.ParseRequestID(resA.ID)

	// Just after a boundary, so that none passes while the test looks.
	toEpochStart(tr.clk, tr.th)
	f := tr.th.fapp
	now := tr.clk.Now()
	f.mu.Lock()
	if _, err := f.respondLocked(id, decideHold, "", now.Add(24*time.Hour), now); err != nil {
		f.mu.Unlock()
		t.Fatal(err)
	}
	sentAtOnce := unicasts(f.inflight)
	f.mu.Unlock()
	if sentAtOnce != 1 {
		t.Errorf("at the hold %d answers leave the node at once, want 1 (the held patient's)", sentAtOnce)
	}

	// A third request for the held slot, from a fresh patient book.
	f.mu.Lock()
	a := f.idx.Get(fapp.TherapistKeyOf(tr.th.id.Compact()))
	slot, _ := findSlot(a, 1)
	f.mu.Unlock()
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	_, sealed, err := pb.NewRequest(randReader, tr.th.id.Public(), fapp.SlotRef{Therapist: a.Therapist, Slot: 1}, slot.Start, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	before := unicasts(f.inflight)
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.onTherapistMsgLocked(&b, tr.pat.id.Address(), sealed, now)
	refusedAtOnce := unicasts(f.inflight) - before
	f.mu.Unlock()
	f.write(b)
	if f.stats.snapshot()["requests_refused"] != 1 {
		t.Fatalf("the request for the held slot was not refused: %v", f.stats.snapshot())
	}
	if refusedAtOnce != 0 {
		t.Errorf("the refusal of a request for the held slot leaves the node at once")
	}
	if err := tr.th.fappSend(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitReservation(t, ctx, patEv, "GEHALTEN")

	// At the boundary the rival's answer goes, with the announce.
	tr.clk.advance(fappTestEpoch)
	f.poke()
	if r := waitReservation(t, ctx, patEv, "ABGELEHNT"); r.ID != resB.ID {
		t.Fatalf("the rival got %+v, want ABGELEHNT for %s", r, resB.ID)
	}
}

// unicasts counts the reservation messages among outs.
func unicasts(outs []fappOut) int {
	n := 0
	for _, o := range outs {
		if o.unicast {
			n++
		}
	}
	return n
}

// TestFAPPAttackWeeklyPlaceTwice: two patients ask for the weekly therapy
// place, one from its first week, the other from its second. The
// therapist's node must not let it hold one and confirm the other: a
// weekly place is one place (fapp's Book, BookConfig.Occurs), and the
// second request is declined with the hold.
func TestFAPPAttackWeeklyPlaceTwice(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	offer := becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	place := offer.Slots[1]
	find := func(n *Node) string {
		var ref string
		waitFAPP(t, ctx, n, "the patient node finds the place", func() bool {
			res, _ := n.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"THERAPIEPLATZ_KZT"}, LocalOnly: true})
			if len(res.Matches) == 1 && res.Matches[0].Name != "" {
				ref = res.Matches[0].Ref
				return true
			}
			return false
		})
		return ref
	}
	refA, refB := find(tr.pat), find(tr.relay)
	thEv, cancelTh, _ := tr.th.Subscribe(ctx)
	defer cancelTh()
	resA, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refA, Start: place.Start})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := tr.relay.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refB, Start: place.Start.Add(7 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	waitReservation(t, ctx, thEv, "ANGEFRAGT")
	until := tr.clk.Now().Add(24 * time.Hour).Truncate(time.Second)
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: resA.ID, Action: "hold", Until: until}); err != nil || r.State != "GEHALTEN" {
		t.Fatalf("hold: %+v %v", r, err)
	}
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: resB.ID, Action: "confirm"}); err == nil {
		t.Fatalf("the place another patient holds was confirmed for a later week: %+v", r)
	}
	rs, _ := tr.th.FAPPReservations(ctx, rpcapi.FAPPReservationsParams{Role: "therapist"})
	for _, r := range rs {
		if r.ID == resB.ID && r.State != "ABGELEHNT" {
			t.Errorf("the second request is %s after the hold, want ABGELEHNT", r.State)
		}
	}
}
