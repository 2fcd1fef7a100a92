package daemon

import (
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
)

// TestFAPPFailedWriteSendsNothing: the outbox's rule is that a message
// leaves only once the write that stores what it says is done. When that
// write failed (a full disk), the hold's own answer stayed back, but the
// rivals' declines it had queued went out at the boundary all the same:
// their patients were told ABGELEHNT while the store kept their requests
// ANGEFRAGT, which a restart brings back, and the therapist could then
// hold one of them for a patient whose book refuses it. Nothing a failed
// write was to store may leave.
func TestFAPPFailedWriteSendsNothing(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, offer := stoppedTherapist(t, fappConfig(t, is), is, clk)
	defer n.Close()
	f := n.fapp
	now := clk.Now()
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[0].ID}
	var ids []fapp.RequestID
	var late []byte
	for i := range 3 {
		pr, sealed, err := pb.NewRequest(randReader, n.id.Public(), ref, offer.Slots[0].Start, fapp.RequestOptions{}, now)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			late = sealed // comes once the store fails
			break
		}
		ids = append(ids, pr.Request.ID)
		f.mu.Lock()
		b := store.FAPPBatch{Put: map[string][]byte{}}
		f.onTherapistMsgLocked(&b, mustIdentity(t).Address(), sealed, now)
		f.mu.Unlock()
		if err := f.write(b); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.later, f.inflight = nil, nil
	f.mu.Unlock()

	n.st.Close() // every write fails from here on
	f.mu.Lock()
	_, err := f.respondLocked(ids[0], decideHold, "", now.Add(time.Hour), now)
	queued := len(f.later) + len(f.inflight)
	f.mu.Unlock()
	if err == nil {
		t.Fatal("the hold was stored in a closed store")
	}
	if queued != 0 {
		t.Errorf("%d messages queued by a decision whose write failed", queued)
	}
	// A request refused (the slot is held, in memory) by a write that fails.
	f.onDirect(mustIdentity(t).Address(), append([]byte{toTherapist}, late...), 0)
	f.mu.Lock()
	queued = len(f.later) + len(f.inflight)
	f.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d messages queued by a refusal whose write failed", queued)
	}
}
