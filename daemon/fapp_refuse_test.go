package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestFAPPTakenSlotRefused: two patients race for one slot. The first
// request is held; the second, for the slot now GEHALTEN, is answered
// ABGELEHNT by the therapist's node (before, it got no answer at all and
// the patient waited until the request lapsed).
func TestFAPPTakenSlotRefused(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	// The relay follows every region: it is the second patient.
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
	if _, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refA}); err != nil {
		t.Fatal(err)
	}
	got := waitReservation(t, ctx, thEv, "ANGEFRAGT")
	until := tr.clk.Now().Add(24 * time.Hour).Truncate(time.Second)
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: got.ID, Action: "hold", Until: until}); err != nil || r.State != "GEHALTEN" {
		t.Fatalf("hold: %+v %v", r, err)
	}
	waitReservation(t, ctx, aEv, "GEHALTEN")
	resB, err := tr.relay.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: refB})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitReservation(t, ctx, thEv, "ABGELEHNT"); r.ID != resB.ID {
		t.Errorf("the therapist's node shows %+v", r)
	}
	// The refusal waits for the therapist's next boundary
	// (TestFAPPAttackRefusalTimesTheHold).
	tr.clk.advance(fappTestEpoch)
	tr.th.fapp.poke()
	if r := waitReservation(t, ctx, bEv, "ABGELEHNT"); r.ID != resB.ID {
		t.Fatalf("the second patient got %+v, want ABGELEHNT for %s", r, resB.ID)
	}
}
