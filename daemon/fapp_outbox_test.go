package daemon

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// TestFAPPAttackCrashLosesAnswer: the therapist confirms; the decision is
// stored, and the node dies (kill -9) before the engine has the answer in
// its stored custody. Before, the answer lived only in memory until the
// loop handed it to the engine: after the restart the therapist's book
// said BESTAETIGT and the patient's ANGEFRAGT, for good. Now the answer is
// stored with the decision and sent again at the start.
func TestFAPPAttackCrashLosesAnswer(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	var ref string
	waitFAPP(t, ctx, tr.pat, "the patient node finds the slot", func() bool {
		res, _ := tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}})
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
	if _, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref}); err != nil {
		t.Fatal(err)
	}
	got := waitReservation(t, ctx, thEv, "ANGEFRAGT")
	id, err := fapp.ParseRequestID(got.ID)
	if err != nil {
		t.Fatal(err)
	}

	// The decision is stored; the crash takes what was in memory, the
	// answer queued for the engine, before the loop hands it over.
	f := tr.th.fapp
	f.mu.Lock()
	r, err := f.respondLocked(id, decideConfirm, "Bitte klingeln", time.Time{}, tr.clk.Now())
	f.inflight = nil
	f.mu.Unlock()
	if err != nil || r.State != fapp.Bestaetigt {
		t.Fatalf("confirm: %v %v", r.State, err)
	}
	tr.stopTh()

	th, stop := tr.start(t, tr.thCfg, tr.thLog)
	tr.th, tr.stopTh = th, stop
	linkNodes(t, th, tr.relay)
	for {
		tr.clk.advance(time.Minute) // custody retries come with backoff
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		ev := waitKindOrNil(wctx, patEv, rpcapi.EventFAPPReservation)
		wcancel()
		if ev != nil && ev.FAPPReservation.State == "BESTAETIGT" {
			if ev.FAPPReservation.Nachricht != "Bitte klingeln" {
				t.Errorf("patient sees %+v", ev.FAPPReservation)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the confirmation stored before the crash never reached the patient")
		}
	}
	// Once the engine holds it, the stored copy goes: a later start sends
	// nothing again.
	waitFAPP(t, ctx, th, "the stored answer is deleted once the engine has it", func() bool {
		n := 0
		th.st.FAPPScan("f/x/", func(string, []byte) error { n++; return nil })
		return n == 0
	})
}

// TestFAPPAttackCrashSplitsBookAndOffer: a decision changes two stored
// things, the reservation (f/t/) and the slot's status in the own offer
// (f/o/offer). They were two synced writes: a kill -9 between them left a
// held or confirmed slot FREI in the offer after the restart (announced
// free, requests for it taken that can never be held), or a cancelled one
// GEHALTEN for good (the place hidden). Every write that stores a
// reservation of the slot must leave the offer with the status the book
// implies, here after a hold, a confirmation and a therapist's cancel; and
// the write of the hold must decline the rival request with it (a crash
// before a second write left the rival ANGEFRAGT, unanswered for a week).
func TestFAPPAttackCrashSplitsBookAndOffer(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := becomeTherapist(t, ctx, n, is, clk)
	f := n.fapp
	now := clk.Now()
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[0].ID}
	pr, sealed, err := pb.NewRequest(randReader, n.id.Public(), ref, offer.Slots[0].Start, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	rival, sealedRival, err := pb.NewRequest(randReader, n.id.Public(), ref, offer.Slots[0].Start, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{sealed, sealedRival} {
		f.mu.Lock()
		b := store.FAPPBatch{Put: map[string][]byte{}}
		f.onTherapistMsgLocked(&b, mustIdentity(t).Address(), s, now)
		f.mu.Unlock()
		if err := f.write(b); err != nil {
			t.Fatal(err)
		}
	}
	id := pr.Request.ID
	stateOf := func(id fapp.RequestID) fapp.ReservationState {
		v, _ := n.st.FAPPGet(therapistResKey(id))
		r, _, err := decodeTherapistRes(v)
		if err != nil {
			t.Fatal(err)
		}
		return r.State
	}
	stored := func() (fapp.ReservationState, fapp.SlotStatus) {
		v, _ := n.st.FAPPGet(therapistResKey(id))
		r, _, err := decodeTherapistRes(v)
		if err != nil {
			t.Fatal(err)
		}
		var o ownOffer
		v, _ = n.st.FAPPGet(keyOwnOffer)
		if err := json.Unmarshal(v, &o); err != nil {
			t.Fatal(err)
		}
		for _, s := range o.slots() {
			if s.ID == ref.Slot {
				return r.State, s.Status
			}
		}
		t.Fatal("the slot left the stored offer")
		return 0, 0
	}
	for _, step := range []struct {
		action string
		want   fapp.SlotStatus
	}{{decideHold, fapp.SlotGehalten}, {decideConfirm, fapp.SlotVergeben}, {decideCancel, fapp.SlotFrei}} {
		f.mu.Lock()
		f.afterWrite = func(b store.FAPPBatch) {
			if _, ok := b.Put[therapistResKey(id)]; !ok {
				return
			}
			if st, slot := stored(); slot != step.want {
				t.Errorf("%s: a crash after the write that stored %v leaves the slot %v in the offer, want %v", step.action, st, slot, step.want)
			}
			if st := stateOf(rival.Request.ID); step.action == decideHold && st != fapp.Abgelehnt {
				t.Errorf("a crash after the write that stored the hold leaves the rival %v, want ABGELEHNT", st)
			}
		}
		_, err := f.respondLocked(id, step.action, "", now.Add(time.Hour), now)
		f.afterWrite = nil
		f.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
	}
}

// TestFAPPEarlyCancelSurvivesRestart: a patient's cancel reaches the
// therapist's node before the request (fapp's TestAttackCancelOvertakes
// Request); the node restarts before the request comes. The kept cancel
// lived in the Book's memory only and the request then arrived ANGEFRAGT.
// Its inbox entry now stays until the request arrives, and the restart
// applies it again.
func TestFAPPEarlyCancelSurvivesRestart(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is)
	n, offer := stoppedTherapist(t, cfg, is, clk)

	// With the loop stopped, the cancel is delivered as the engine would
	// deliver it (inbox first) and handled.
	now := clk.Now()
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[0].ID}
	pr, request, err := pb.NewRequest(randReader, n.id.Public(), ref, offer.Slots[0].Start, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	cancelMsg, err := pb.Cancel(randReader, pr.Request.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	from := mustIdentity(t).Address()
	body := append([]byte{toTherapist}, cancelMsg...)
	seqs, err := n.st.Apply(&routing.Ready{Deliveries: []routing.Delivery{{Type: protocol.TypeFAPP, From: from, Body: body}}})
	if err != nil {
		t.Fatal(err)
	}
	n.fapp.onDirect(from, body, seqs[0])
	if !n.fapp.book.HasEarly(pr.Request.ID) {
		t.Fatal("the cancel before its request was not kept")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, stop := startClocked(t, cfg, clk)
	defer stop()
	f := n.fapp
	f.mu.Lock()
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.onTherapistMsgLocked(&b, from, request, clk.Now())
	r, err := f.book.Get(pr.Request.ID)
	f.mu.Unlock()
	f.write(b)
	if err != nil || r.State != fapp.StorniertPatient {
		t.Fatalf("the request after a restart: %v %v, want STORNIERT_PATIENT", r.State, err)
	}
	// Both are done with: the cancel's inbox entry is gone.
	entries, _, err := n.st.Inbox(0, 10)
	if err != nil || len(entries) != 0 {
		t.Errorf("inbox after the request: %d entries, %v", len(entries), err)
	}
}

// stoppedTherapist opens a node on cfg and clk, runs it until it is a
// therapist with a published offer (becomeTherapist), and stops its loop:
// the test then hands the node's FAPP side its inputs by hand. The caller
// closes the node.
func stoppedTherapist(t *testing.T, cfg Config, is *fapp.Issuer, clk *testClock) (*Node, rpcapi.FAPPOffer) {
	t.Helper()
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := becomeTherapist(t, ctx, n, is, clk)
	stopRun()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return n, offer
}
