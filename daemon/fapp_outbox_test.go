package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
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
