package daemon

import (
	"context"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestFAPPRaceBothPending: two patients ask for one slot before the
// therapist decides. When the therapist holds one, the other request can
// never be held or confirmed (Book refuses a second hold): the therapist's
// node answers it ABGELEHNT at once instead of leaving it ANGEFRAGT until
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
	if r := waitReservation(t, ctx, bEv, "ABGELEHNT"); r.ID != resB.ID {
		t.Fatalf("the second patient got %+v, want ABGELEHNT for %s", r, resB.ID)
	}
}
