package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// sendRequest delivers a patient's sealed request to the therapist node th
// as the network would (through onDirect on the loop) and returns the
// patient's record of it.
func sendRequest(t *testing.T, ctx context.Context, th *Node, pb *fapp.PatientBook, slot fapp.SlotRef, start, now time.Time) fapp.PatientReservation {
	t.Helper()
	r, sealed, err := pb.NewRequest(rand.Reader, th.id.Public(), slot, start, fapp.RequestOptions{Kontakt: "tel 0301234"}, now)
	if err != nil {
		t.Fatal(err)
	}
	from := mustIdentity(t).Address()
	if err := th.call(ctx, func() { th.fapp.onDirect(from, append([]byte{toTherapist}, sealed...), 0) }); err != nil {
		t.Fatal(err)
	}
	return r
}

func ownSlotStatus(th *Node, id uint16) fapp.SlotStatus {
	th.fapp.mu.Lock()
	defer th.fapp.mu.Unlock()
	for _, s := range th.fapp.pub.Slots() {
		if s.ID == id {
			return s.Status
		}
	}
	return 0
}

// TestFAPPAttackRequestOffOccurrence: a patient's slot is confirmed and
// announced VERGEBEN; an anonymous attacker then sends one request for the
// same slot at a start time that is not an occurrence of it. The
// therapist's node must refuse it (ABGELEHNT): accepting it, or letting
// the refusal set the slot's status, made the slot FREI again in the next
// announce (the book's status of the bogus occurrence) and let a second
// patient book the same appointment.
func TestFAPPAttackRequestOffOccurrence(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slot := th.fapp.pub.Slots()[0]
	th.fapp.mu.Unlock()
	ref := slot.Ref(fapp.TherapistKeyOf(th.id.Compact()))
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})

	legit := sendRequest(t, ctx, th, pb, ref, slot.Start, clk.Now())
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: legit.Request.ID.String(), Action: rpcapi.FAPPConfirm}); err != nil {
		t.Fatal(err)
	}
	if st := ownSlotStatus(th, slot.ID); st != fapp.SlotVergeben {
		t.Fatalf("after the confirmation the slot is %v", st)
	}

	bogus := sendRequest(t, ctx, th, pb, ref, slot.Start.Add(time.Minute), clk.Now())
	if st := bookState(th, bogus.Request.ID); st != fapp.Abgelehnt {
		t.Errorf("a request for a start that is no occurrence of the slot is %v in the book, want ABGELEHNT", st)
	}
	if st := ownSlotStatus(th, slot.ID); st != fapp.SlotVergeben {
		t.Errorf("one bogus request turned the confirmed slot %v in the announce", st)
	}
	// A second request for the confirmed occurrence itself is refused too:
	// the slot is not on offer any more.
	again := sendRequest(t, ctx, th, pb, ref, slot.Start, clk.Now())
	if st := bookState(th, again.Request.ID); st != fapp.Abgelehnt {
		t.Errorf("a request for a slot that is VERGEBEN is %v in the book, want ABGELEHNT", st)
	}
	if st := ownSlotStatus(th, slot.ID); st != fapp.SlotVergeben {
		t.Errorf("a refused request turned the confirmed slot %v in the announce", st)
	}
}

// bookState is the therapist's book's state of reservation id (zero if the
// book does not hold it).
func bookState(th *Node, id fapp.RequestID) fapp.ReservationState {
	th.fapp.mu.Lock()
	defer th.fapp.mu.Unlock()
	r, err := th.fapp.book.Get(id)
	if err != nil {
		return 0
	}
	return r.State
}

func storeKeys(t *testing.T, n *Node, prefix string) int {
	t.Helper()
	c := 0
	if err := n.st.FAPPScan(prefix, func(string, []byte) error { c++; return nil }); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFAPPAttackFloodFillsStore: the index bounds memory (profiles without
// an announce wait in a small cache, evicted and expired announces go),
// but the daemon wrote every profile that arrived to badger and deleted
// announces only at the next start, so a neighbour with many keys filled
// the disk: 1.5 KB per profile, for free. Only what the index holds may be
// on disk.
func TestFAPPAttackFloodFillsStore(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := clk.Now()
	var announce []byte
	for i := range 20 {
		a, p := foreignOffer(t, mustIdentity(t), is, now, "10115")
		if err := n.call(ctx, func() { n.fapp.onRegionFrame(10, p, now) }); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			announce = a
		}
	}
	if got := storeKeys(t, n, "f/p/"); got != 0 {
		t.Errorf("%d profiles without an announce were written to the store", got)
	}
	// The first one's announce arrives: its profile is held, and stored.
	if err := n.call(ctx, func() { n.fapp.onRegionFrame(10, announce, now) }); err != nil {
		t.Fatal(err)
	}
	if a, p := storeKeys(t, n, "f/a/"), storeKeys(t, n, "f/p/"); a != 1 || p != 1 {
		t.Errorf("with its announce: %d announces, %d profiles stored", a, p)
	}
	// The announce expires: the index drops it, and so must the store.
	clk.advance(25 * time.Hour)
	if err := n.call(ctx, func() { n.fapp.tick() }); err != nil {
		t.Fatal(err)
	}
	if a, p := storeKeys(t, n, "f/a/"), storeKeys(t, n, "f/p/"); a != 0 || p != 0 {
		t.Errorf("after expiry: %d announces, %d profiles still stored", a, p)
	}
}

// TestFAPPPatientDataDeletedWhenDone: a therapist's node keeps a request
// (with the patient's contact and PTV 11 data) while it matters. The book
// forgets a finished reservation once its request is older than the
// request lifetime, but the daemon kept the stored record, contact
// included, in badger for ever (and the patient node's address in memory).
func TestFAPPPatientDataDeletedWhenDone(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slot := th.fapp.pub.Slots()[1] // the weekly place: still on offer after a week
	th.fapp.mu.Unlock()
	ref := slot.Ref(fapp.TherapistKeyOf(th.id.Compact()))
	r := sendRequest(t, ctx, th, fapp.NewPatientBook(fapp.PatientBookConfig{}), ref, slot.Start, clk.Now())
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: r.Request.ID.String(), Action: rpcapi.FAPPDecline}); err != nil {
		t.Fatal(err)
	}
	if got := storeKeys(t, th, "f/t/"); got != 1 {
		t.Fatalf("%d stored reservations while it matters", got)
	}
	clk.advance(fapp.DefaultRequestTTL + time.Hour)
	if err := th.call(ctx, func() { th.fapp.tick() }); err != nil {
		t.Fatal(err)
	}
	th.fapp.mu.Lock()
	_, inBook := th.fapp.book.Get(r.Request.ID)
	_, addr := th.fapp.replyTo[r.Request.ID]
	th.fapp.mu.Unlock()
	if inBook == nil {
		t.Fatal("the book still holds the old reservation: the test measures nothing")
	}
	if got := storeKeys(t, th, "f/t/"); got != 0 || addr {
		t.Errorf("forgotten reservation: %d records with the patient's contact stored, patient address kept %v", got, addr)
	}
}

// TestFAPPReserveRefusesStartOffSlot: fapp.reserve with a start that is no
// occurrence of the slot (or one already past) was minted, stored and sent;
// the therapist refuses such a request without an answer, so the patient's
// reservation stayed ANGEFRAGT for ever. The API refuses it instead.
func TestFAPPReserveRefusesStartOffSlot(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := clk.Now()
	id := mustIdentity(t)
	a, p := foreignOffer(t, id, is, now, "10115")
	for _, b := range [][]byte{p, a} {
		if err := n.call(ctx, func() { n.fapp.onRegionFrame(10, b, now) }); err != nil {
			t.Fatal(err)
		}
	}
	ann, err := fapp.ParseSlotAnnounce(a[1:], now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	slot := ann.Slots[0]
	ref := slot.Ref(ann.Therapist).String()
	for _, start := range []time.Time{slot.Start.Add(time.Minute), slot.Start.Add(-7 * 24 * time.Hour)} {
		if r, err := n.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref, Start: start, Kontakt: "x"}); err == nil {
			t.Errorf("reserve at %v (slot starts %v): accepted, %+v", start, slot.Start, r)
		}
	}
	if got := storeKeys(t, n, "f/r/"); got != 0 {
		t.Errorf("%d refused reservations stored", got)
	}
	if _, err := n.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref, Start: slot.Start, Kontakt: "x"}); err != nil {
		t.Errorf("reserve at the slot's start: %v", err)
	}
}

// TestFAPPAttackKeyFloodProfileAsks: every announce whose profile is
// missing leaves a "profile asked" time per therapist key, and answered
// requests one per key too. The maps were never pruned: a neighbour
// flooding announces under fresh keys (each evicting the previous one in
// a full region) grew them without bound. An entry is needed for a minute.
func TestFAPPAttackKeyFloodProfileAsks(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := clk.Now()
	for range 20 {
		a, _ := foreignOffer(t, mustIdentity(t), is, now, "10115")
		if err := n.call(ctx, func() { n.fapp.onRegionFrame(10, a, now) }); err != nil {
			t.Fatal(err)
		}
	}
	n.fapp.mu.Lock()
	asked := len(n.fapp.profAsk)
	n.fapp.mu.Unlock()
	if asked != 20 {
		t.Fatalf("%d profile requests remembered: the test measures nothing", asked)
	}
	clk.advance(2 * fappProfileRequestEvery)
	if err := n.call(ctx, func() { n.fapp.tick() }); err != nil {
		t.Fatal(err)
	}
	n.fapp.mu.Lock()
	asked, sent := len(n.fapp.profAsk), len(n.fapp.profSent)
	n.fapp.mu.Unlock()
	if asked != 0 || sent != 0 {
		t.Errorf("after %v: %d profile requests and %d answers still remembered", 2*fappProfileRequestEvery, asked, sent)
	}
}

// TestFAPPRestoreKeepsProfiles: after a restart the stored profiles came
// back before their announces, through the pending cache of 1,024, so a
// node holding more therapists (a relay; region 10 alone has thousands)
// lost the rest: no credential, no key to seal a reservation to, until
// the next announce of each asked for it again, up to 12 hours later.
func TestFAPPRestoreKeepsProfiles(t *testing.T) {
	noLeaks(t)
	const therapists = 1100
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is, "10")
	n, stop := startClocked(t, cfg, clk)
	now := clk.Now()
	put := map[string][]byte{}
	for i := range therapists {
		id := mustIdentity(t)
		a, p := foreignOffer(t, id, is, now, "10115")
		k := fapp.TherapistKeyOf(id.Compact())
		put[announceKey(k)], put[profileKey(k)] = a[1:], p[1:]
		if len(put) >= 200 || i == therapists-1 {
			if err := n.st.FAPPWrite(storeBatch(put)); err != nil {
				stop()
				t.Fatal(err)
			}
			put = map[string][]byte{}
		}
	}
	stop()
	n, stop = startClocked(t, cfg, clk)
	defer func() { stop() }()
	n.fapp.mu.Lock()
	st := n.fapp.idx.Stats()
	n.fapp.mu.Unlock()
	if st.Announces != therapists || st.Profiles != therapists || st.Credentialed != therapists {
		t.Errorf("after the restart: %+v", st)
	}
	// Two days later every announce has expired: the next start deletes
	// them and their profiles (more than one transaction holds).
	stop()
	clk.advance(48 * time.Hour)
	n, stop = startClocked(t, cfg, clk)
	if a, p := storeKeys(t, n, "f/a/"), storeKeys(t, n, "f/p/"); a != 0 || p != 0 {
		t.Errorf("after expiry and a restart: %d announces, %d profiles stored", a, p)
	}
}

func storeBatch(put map[string][]byte) store.FAPPBatch { return store.FAPPBatch{Put: put} }

// TestFAPPHoldLapseNotSwallowed: the book expires lapsed holds inside
// every Receive, Hold, Confirm and cancel too, but only the ticker's own
// Expire call was written back: a message arriving (or a decision made) in
// the second between a hold's lapse and the next tick took the lapse with
// it. The slot then stayed GEHALTEN in every announce, refused to every
// patient, and the stored record stayed GEHALTEN. The holder can time
// that: it knows its hold's end.
func TestFAPPHoldLapseNotSwallowed(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slots := th.fapp.pub.Slots()
	th.fapp.mu.Unlock()
	key := fapp.TherapistKeyOf(th.id.Compact())
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	held := sendRequest(t, ctx, th, pb, slots[0].Ref(key), slots[0].Start, clk.Now())
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: held.Request.ID.String(), Action: rpcapi.FAPPHold,
		Until: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st := ownSlotStatus(th, slots[0].ID); st != fapp.SlotGehalten {
		t.Fatalf("held slot is %v", st)
	}
	// Another patient's request for the other slot arrives just after the
	// hold lapsed, before the ticker looked.
	now := clk.Now()
	_, sealed, err := pb.NewRequest(rand.Reader, th.id.Public(), slots[1].Ref(key), slots[1].Start, fapp.RequestOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	from := mustIdentity(t).Address()
	if err := th.call(ctx, func() {
		clk.advance(time.Hour + time.Second)
		th.fapp.onDirect(from, append([]byte{toTherapist}, sealed...), 0)
	}); err != nil {
		t.Fatal(err)
	}
	if err := th.call(ctx, func() { th.fapp.tick() }); err != nil {
		t.Fatal(err)
	}
	if st := ownSlotStatus(th, slots[0].ID); st != fapp.SlotFrei {
		t.Errorf("the lapsed hold's slot is %v, want FREI", st)
	}
	v, err := th.st.FAPPGet(therapistResKey(held.Request.ID))
	if err != nil {
		t.Fatal(err)
	}
	if r, _, err := decodeTherapistRes(v); err != nil || r.State != fapp.Abgelaufen {
		t.Errorf("stored record of the lapsed hold: %v %v", r.State, err)
	}
}

// TestFAPPPublishRefusesEditOfTakenSlot: fapp.publish with the ID of a
// slot that is VERGEBEN replaced it, so any API client could move a
// confirmed appointment from under its patient (the web page refused, the
// API did not).
func TestFAPPPublishRefusesEditOfTakenSlot(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slot := th.fapp.pub.Slots()[0]
	th.fapp.mu.Unlock()
	ref := slot.Ref(fapp.TherapistKeyOf(th.id.Compact()))
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	r := sendRequest(t, ctx, th, pb, ref, slot.Start, clk.Now())
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: r.Request.ID.String(), Action: rpcapi.FAPPConfirm}); err != nil {
		t.Fatal(err)
	}
	moved := rpcapi.FAPPSlotOf(slot)
	moved.Start = slot.Start.Add(24 * time.Hour)
	if _, err := th.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: []rpcapi.FAPPSlot{moved}}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("editing a VERGEBEN slot: %v, want ErrRefused", err)
	}
	th.fapp.mu.Lock()
	now := th.fapp.pub.Slots()[0]
	th.fapp.mu.Unlock()
	if !now.Start.Equal(slot.Start) {
		t.Errorf("the confirmed slot moved from %v to %v", slot.Start, now.Start)
	}
}
