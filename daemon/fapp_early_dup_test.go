package daemon

import (
	"testing"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestFAPPEarlyCancelCopyAcknowledged: a patient's cancel overtakes its
// request and is kept (TestFAPPEarlyCancelSurvivesRestart); the request
// comes, and both inbox entries go. A second copy of the cancel (the
// patient's node sends a stored message again after a crash) was kept too:
// the Book still remembers the early cancel, so the node left the copy's
// inbox entry in place for up to a week, counted in the inbox and applied
// again at every start, though its request had long arrived. A copy for a
// request the book has is answered like any refused cancel: acknowledged.
func TestFAPPEarlyCancelCopyAcknowledged(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, offer := stoppedTherapist(t, fappConfig(t, is), is, clk)
	defer n.Close()

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
	deliver := func(sealed []byte) {
		body := append([]byte{toTherapist}, sealed...)
		seqs, err := n.st.Apply(&routing.Ready{Deliveries: []routing.Delivery{{Type: protocol.TypeFAPP, From: from, Body: body}}})
		if err != nil {
			t.Fatal(err)
		}
		n.fapp.onDirect(from, body, seqs[0])
	}
	deliver(cancelMsg)
	deliver(request)
	if r, err := n.fapp.book.Get(pr.Request.ID); err != nil || r.State != fapp.StorniertPatient {
		t.Fatalf("the request after its cancel: %v %v", r.State, err)
	}
	deliver(cancelMsg) // the copy
	if left := n.st.InboxLen(); left != 0 {
		t.Errorf("%d inbox entries left once the request and its cancel are done with, want 0", left)
	}
}
