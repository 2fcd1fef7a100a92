package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// highestSlot is the own slot with the highest ID.
func highestSlot(th *Node) fapp.Slot {
	th.fapp.mu.Lock()
	defer th.fapp.mu.Unlock()
	var out fapp.Slot
	for _, s := range th.fapp.pub.Slots() {
		if s.ID > out.ID {
			out = s
		}
	}
	return out
}

// publishNew adds one new slot (ID 0) two hours after the first test
// slot and returns the ID the node gave it.
func publishNew(t *testing.T, ctx context.Context, th *Node, clk *testClock) (uint16, error) {
	t.Helper()
	before := map[uint16]bool{}
	cur, err := th.FAPPSlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cur.Slots {
		before[s.ID] = true
	}
	s := therapistSlots(clk.Now())[0]
	s.Start = s.Start.Add(2 * time.Hour)
	o, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{s}})
	if err != nil {
		return 0, err
	}
	for _, s := range o.Slots {
		if !before[s.ID] {
			return s.ID, nil
		}
	}
	t.Fatalf("no new slot in %+v", o.Slots)
	return 0, nil
}

// TestFAPPAttackSlotIDReused: the therapist holds the highest slot for a
// patient, withdraws it and publishes a new slot at another time. The
// node gave the new slot the withdrawn slot's ID, so the old reservation
// still named it: confirming the old patient turned the new slot
// VERGEBEN in the announce (nobody had asked for it), and the patient
// holding the old slot was shown the new slot's time.
func TestFAPPAttackSlotIDReused(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	old := highestSlot(th)
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	r := sendRequest(t, ctx, th, pb, old.Ref(fapp.TherapistKeyOf(th.id.Compact())), old.Start, clk.Now())
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: r.Request.ID.String(), Action: rpcapi.FAPPHold}); err != nil {
		t.Fatal(err)
	}
	if _, err := th.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{old.ID}}); err != nil {
		t.Fatal(err)
	}
	id, err := publishNew(t, ctx, th, clk)
	if err != nil {
		t.Fatal(err)
	}
	if id == old.ID {
		t.Errorf("the new slot got the withdrawn slot's ID %d", id)
	}
	res, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: r.Request.ID.String(), Action: rpcapi.FAPPConfirm})
	if err != nil {
		t.Fatal(err)
	}
	if st := ownSlotStatus(th, id); st != fapp.SlotFrei {
		t.Errorf("confirming the withdrawn slot's reservation made the new slot %v", st)
	}
	if res.Details != nil && !res.Details.Start.Equal(old.Start) {
		t.Errorf("the old reservation shows the new slot's time %v, asked %v", res.Details.Start, old.Start)
	}
}

// TestFAPPSlotIDNotReusedAfterRestart: the high-water mark survives a
// restart, and a store written before there was one (the upgrade) takes
// it from the reservation book, whose old reservation names the
// withdrawn slot.
func TestFAPPSlotIDNotReusedAfterRestart(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is)
	th, stop := startClocked(t, cfg, clk)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	old := highestSlot(th)
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	sendRequest(t, ctx, th, pb, old.Ref(fapp.TherapistKeyOf(th.id.Compact())), old.Start, clk.Now())
	if _, err := th.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{old.ID}}); err != nil {
		t.Fatal(err)
	}
	// Release the withdrawal, so the stored announce no longer names the
	// slot either: only the mark and the book do.
	clk.advance(fappTestEpoch)
	th.fapp.poke()
	waitFAPP(t, ctx, th, "withdrawal released", func() bool {
		th.fapp.mu.Lock()
		defer th.fapp.mu.Unlock()
		a, _ := fapp.ParseSlotAnnounce(th.fapp.lastRaw, clk.Now(), time.Hour)
		return a != nil && len(a.Slots) == 1
	})
	stop()

	th, stop = startClocked(t, cfg, clk)
	if id, err := publishNew(t, ctx, th, clk); err != nil || id <= old.ID {
		t.Errorf("after a restart the new slot got ID %d (%v), the withdrawn one had %d", id, err, old.ID)
	}
	stop()
	upgradeStore(t, cfg, clk)

	th, stop = startClocked(t, cfg, clk)
	defer stop()
	if id, err := publishNew(t, ctx, th, clk); err != nil || id <= old.ID {
		t.Errorf("upgraded store: the new slot got ID %d (%v), the withdrawn one (in the book) had %d", id, err, old.ID)
	}
}

// TestFAPPEditWithdrawnSlotRefused: fapp.publish with the ID of a
// withdrawn slot used to add it back as a new slot under the old ID; it
// is refused, saying to publish it as a new slot.
func TestFAPPEditWithdrawnSlotRefused(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	old := highestSlot(th)
	if _, err := th.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{old.ID}}); err != nil {
		t.Fatal(err)
	}
	s := therapistSlots(clk.Now())[0]
	s.ID = old.ID
	_, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{s}})
	if !errors.Is(err, rpcapi.ErrRefused) || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("editing withdrawn slot %d: %v, want refused", old.ID, err)
	}
	// An ID above every ID given out is a new slot, as before.
	s.ID = old.ID + 10
	if o, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{s}}); err != nil || len(o.Slots) != 2 {
		t.Fatalf("a new slot with its own ID: %+v %v", o, err)
	}
	if id, err := publishNew(t, ctx, th, clk); err != nil || id != old.ID+11 {
		t.Errorf("the next new slot got %d (%v), want %d", id, err, old.ID+11)
	}
}

// TestFAPPSlotIDsExhausted: when the mark reaches 65535 a new slot is
// refused with an error that says what to do.
func TestFAPPSlotIDsExhausted(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	s := therapistSlots(clk.Now())[0]
	s.ID = 0xffff
	if _, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{s}}); err != nil {
		t.Fatal(err)
	}
	if _, err := th.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{0xffff}}); err != nil {
		t.Fatal(err)
	}
	_, err := publishNew(t, ctx, th, clk)
	if !errors.Is(err, rpcapi.ErrRefused) || !strings.Contains(err.Error(), "therapist key") {
		t.Errorf("publishing after the last slot ID: %v", err)
	}
}

// TestFAPPAttackPatientSeesReusedSlot: a therapist node (an old release,
// or a malicious one) announces a slot under the ID a patient reserved
// but at another time. The patient's reservation showed the new slot's
// details (time, Terminart) as if they were the appointment asked for.
func TestFAPPAttackPatientSeesReusedSlot(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "20"), clk)
	defer stop()
	tid := mustIdentity(t)
	announce, profile := foreignOffer(t, tid, is, clk.Now(), "20095")
	n.fapp.onRegionFrame(20, profile, clk.Now())
	n.fapp.onRegionFrame(20, announce, clk.Now())
	key := fapp.TherapistKeyOf(tid.Compact())
	n.fapp.mu.Lock()
	defer n.fapp.mu.Unlock()
	a := n.fapp.idx.Get(key)
	if a == nil {
		t.Fatal("the announce is not in the index")
	}
	slot := a.Slots[0]
	r := fapp.PatientReservation{Request: fapp.Request{Slot: slot.Ref(key), Start: slot.Start.Add(24 * time.Hour)},
		State: fapp.Bestaetigt}
	got := n.fapp.patientAPILocked(r)
	if got.Details != nil {
		t.Errorf("a reservation for %v shows the slot now announced under its ID at %v", r.Request.Start, got.Details.Start)
	}
	r.Request.Start = slot.Start
	if got := n.fapp.patientAPILocked(r); got.Details == nil || !got.Details.Start.Equal(slot.Start) {
		t.Errorf("the reservation of the announced slot shows %+v", got.Details)
	}
}

// TestFAPPAttackStatusOfMovedSlot: a request names a slot occurrence; the
// therapist then moves the (still FREI) slot to another time and answers
// the old request. Holding it marked the moved slot GEHALTEN, at a time
// nobody asked for (and a patient cancel or an expiry of an old
// reservation under a reused ID set a held slot FREI again). A status
// follows a reservation only while its slot still has the occurrence.
func TestFAPPAttackStatusOfMovedSlot(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	old := highestSlot(th)
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	r := sendRequest(t, ctx, th, pb, old.Ref(fapp.TherapistKeyOf(th.id.Compact())), old.Start, clk.Now())
	moved := rpcapi.FAPPSlotOf(old)
	moved.Start = moved.Start.Add(time.Hour)
	if moved.Woechentlich {
		moved.Bis = moved.Bis.Add(time.Hour)
	}
	if _, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{moved}}); err != nil {
		t.Fatal(err)
	}
	res, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: r.Request.ID.String(), Action: rpcapi.FAPPHold})
	if err != nil {
		t.Fatal(err)
	}
	if st := ownSlotStatus(th, old.ID); st != fapp.SlotFrei {
		t.Errorf("holding a request for the slot's old time made the moved slot %v", st)
	}
	if res.Details != nil {
		t.Errorf("the request for %v shows the moved slot at %v", old.Start, res.Details.Start)
	}
}

// upgradeStore rewrites the stored own offer as a release before the
// high-water mark wrote it (no max_slot_id), keeping only the first slot,
// and deletes the last own announce (it names the later new slot): only
// the reservation book still names the withdrawn slot. The node is opened
// without its loop, so no release rewrites the store meanwhile.
func upgradeStore(t *testing.T, cfg Config, clk *testClock) {
	t.Helper()
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	v, err := n.st.FAPPGet(keyOwnOffer)
	var o map[string]any
	if err == nil {
		err = json.Unmarshal(v, &o)
	}
	if err != nil {
		t.Fatal(err)
	}
	delete(o, "max_slot_id")
	o["slots"] = o["slots"].([]any)[:1]
	v, _ = json.Marshal(o)
	if err := n.st.FAPPWrite(store.FAPPBatch{Put: map[string][]byte{keyOwnOffer: v}, Delete: []string{keyOwnAnnounce}}); err != nil {
		t.Fatal(err)
	}
}

// TestFAPPAttackRefusedRequestRaisesMark: a request for a slot ID the
// therapist never offered is refused but recorded (ABGELEHNT) in the book;
// the restart raised the mark to it, so one request naming slot 65535
// used up every slot ID of the therapist key.
func TestFAPPAttackRefusedRequestRaisesMark(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is)
	th, stop := startClocked(t, cfg, clk)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	top := highestSlot(th)
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	bogus := sendRequest(t, ctx, th, pb, fapp.SlotRef{Therapist: fapp.TherapistKeyOf(th.id.Compact()), Slot: 0xffff}, top.Start, clk.Now())
	if st := bookState(th, bogus.Request.ID); st != fapp.Abgelehnt {
		t.Fatalf("the request for a slot never offered is %v", st)
	}
	stop()

	th, stop = startClocked(t, cfg, clk)
	defer stop()
	if id, err := publishNew(t, ctx, th, clk); err != nil || id != top.ID+1 {
		t.Errorf("after a refused request for slot 65535 the new slot got %d (%v), want %d", id, err, top.ID+1)
	}
}
