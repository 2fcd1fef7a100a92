package daemon

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// openFAPPNode opens a node (no loop) following region 10 and trusting
// is, for feeding FAPP handlers directly.
func openFAPPNode(tb testing.TB, is *fapp.Issuer, clk *testClock) *Node {
	tb.Helper()
	n, err := Open(context.Background(), fappConfig(tb, is, "10"), Options{Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// TestFAPPNetworkBadInputDropped: what arrives on a region channel is
// verified before it is kept: a tampered announce, an announce sent on
// another region's channel, an older sequence, a replay, an expired
// announce, a profile whose signature fails and junk are dropped and
// counted by reason; only the genuine announce is indexed.
func TestFAPPNetworkBadInputDropped(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	now := clk.Now()
	id := mustIdentity(t)
	announce, profile := foreignOffer(t, id, is, now, "10115")
	tampered := slices.Clone(announce)
	tampered[len(tampered)-1] ^= 1 // the signature
	badProfile := slices.Clone(profile)
	badProfile[len(badProfile)-1] ^= 1
	other, _ := foreignOffer(t, mustIdentity(t), is, now, "20095") // region 20
	old, _ := foreignOffer(t, id, is, now.Add(-48*time.Hour), "10115")

	f.onRegionFrame(10, tampered, now)
	f.onRegionFrame(10, badProfile, now)
	f.onRegionFrame(10, other, now)
	f.onRegionFrame(10, nil, now)
	f.onRegionFrame(10, []byte{0x7f, 1, 2}, now)
	f.onRegionFrame(10, []byte{regionProfileReq, 1}, now)
	f.onRegionFrame(10, append([]byte{regionRevocation}, 1, 2, 3), now)
	f.onRegionFrame(10, old, now) // expired: issued two days ago for a day
	f.onRegionFrame(10, announce, now)
	f.onRegionFrame(10, announce, now) // the same sequence again
	f.mu.Lock()
	held := f.idx.Len()
	f.mu.Unlock()
	if held != 1 {
		t.Errorf("index holds %d announces, want the genuine one", held)
	}
	got := f.stats.snapshot()
	for k, want := range map[string]uint64{
		"dropped_announce_bad_signature": 1, "dropped_profile_bad_signature": 1, "dropped_announce_mismatch": 1,
		"dropped_region_malformed": 1, "dropped_region_unknown_kind": 1, "dropped_profile_request_malformed": 1,
		"dropped_revocation_malformed": 1, "dropped_announce_expired": 1, "dropped_announce_stale": 1, "announces_accepted": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
}

// TestFAPPAPIBadInput: the node refuses what the API's validation cannot
// know is wrong, with the right error.
func TestFAPPAPIBadInput(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n, stop := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A credential for another node's keys.
	now := clk.Now().Truncate(time.Second)
	foreign, _ := is.Issue(fapp.Credential{Serial: 1, Therapist: mustIdentity(t).Compact(), Berufsgruppe: fapp.Psychotherapeut,
		RegistryID: "X", ValidFrom: now, ValidTo: now.Add(time.Hour)})
	raw, _ := foreign.MarshalBinary()
	if _, err := n.FAPPCredentialImport(ctx, raw); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("foreign credential: %v", err)
	}
	if _, err := n.FAPPCredentialImport(ctx, []byte{1, 2, 3}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("junk credential: %v", err)
	}
	profile := rpcapi.FAPPProfile{Name: "X", PLZ: "10115", Verfahren: []string{"SYSTEMISCH"}, Kostentraeger: []string{"GKV"}, Altersgruppen: []string{"ERWACHSENE"}}
	if _, err := n.FAPPProfileSet(ctx, profile); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("profile without a credential: %v", err)
	}
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: therapistSlots(clk.Now())}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("publish without a profile: %v", err)
	}
	becomeTherapist(t, ctx, n, is, clk)
	past := therapistSlots(clk.Now())[:1]
	past[0].Start = clk.Now().Add(-48 * time.Hour).Truncate(time.Minute)
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: past}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("slot in the past: %v", err)
	}
	wrongVerfahren := therapistSlots(clk.Now())[:1]
	wrongVerfahren[0].Verfahren = "ANALYTISCH"
	if _, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: wrongVerfahren}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("a Verfahren the profile does not offer: %v", err)
	}
	if o, _ := n.FAPPSlots(ctx); len(o.Slots) != 2 {
		t.Errorf("refused publishes changed the offer: %+v", o.Slots)
	}
	unknown := "0123456789abcdef0123456789abcdef"
	if _, err := n.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: unknown, Action: "confirm"}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("respond to an unknown reservation: %v", err)
	}
	if _, err := n.FAPPCancel(ctx, rpcapi.FAPPCancelParams{ID: unknown}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("cancel an unknown reservation: %v", err)
	}
	if _, err := n.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: fapp.TherapistKeyOf(mustIdentity(t).Compact()).String() + "/1"}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("reserve a slot nobody announced: %v", err)
	}
	if _, err := n.FAPPWithdraw(ctx, rpcapi.FAPPWithdrawParams{Slots: []uint16{77}}); !errors.Is(err, rpcapi.ErrNotFound) {
		t.Errorf("withdraw an unknown slot: %v", err)
	}
	if _, err := n.FAPPRevocationImport(ctx, []byte{1}); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("junk revocation: %v", err)
	}
	stranger := newIssuer(t)
	rv, _ := stranger.Revoke(1, clk.Now(), []uint64{7})
	rraw, _ := rv.MarshalBinary()
	if _, err := n.FAPPRevocationImport(ctx, rraw); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("revocation of an untrusted issuer: %v", err)
	}
	// The trusted issuer revokes the node's credential: its status says so.
	rv, _ = is.Revoke(1, clk.Now(), []uint64{7})
	rraw, _ = rv.MarshalBinary()
	if iss, err := n.FAPPRevocationImport(ctx, rraw); err != nil || iss.Revoked != 1 {
		t.Errorf("revocation: %+v %v", iss, err)
	}
	if st, _ := n.FAPPCredentialStatus(ctx); st.Status != rpcapi.FAPPCredRevoked {
		t.Errorf("status after revocation: %+v", st)
	}
}

// FuzzFAPPFrames: whatever arrives on a region or the query channel is
// handled without a panic (dropped and counted when bad).
func FuzzFAPPFrames(f *testing.F) {
	clk := &testClock{}
	is := newIssuer(f)
	n := openFAPPNode(f, is, clk)
	n.fapp.relay = true // answers queries too
	announce, profile := foreignOffer(&testing.T{}, mustIdentity(&testing.T{}), is, clk.Now(), "10115")
	rq := fapp.RemoteQuery{ReplyTo: mustIdentity(&testing.T{}).Public(), Created: clk.Now().Truncate(time.Second), Query: fapp.Query{PLZPrefix: "10"}}
	qb, _ := rq.MarshalBinary()
	query := append([]byte{queryMsg}, qb...)
	for _, seed := range [][]byte{announce, profile, query, {regionProfileReq}, {answerMsg}} {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	f.Fuzz(func(t *testing.T, onQueries bool, b []byte) {
		now := clk.Now()
		if onQueries {
			n.fapp.onQueryFrame(b, now)
		} else {
			n.fapp.onRegionFrame(10, b, now)
		}
		n.fapp.mu.Lock()
		n.fapp.inflight = nil
		n.fapp.mu.Unlock()
	})
}

// TestFAPPForgottenReservationsLeaveTheStore: a finished reservation older
// than the request lifetime, which the therapist's book forgets, is deleted
// from the store too (it was restored and forgotten again at every start,
// and the store grew without bound).
func TestFAPPForgottenReservationsLeaveTheStore(t *testing.T) {
	clk := &testClock{}
	n := openFAPPNode(t, newIssuer(t), clk)
	f := n.fapp
	now := clk.Now().Truncate(time.Second)
	q := fapp.Request{Slot: fapp.SlotRef{Slot: 1}, Start: now.Add(-7 * 24 * time.Hour), Patient: mustIdentity(t).Public(),
		Created: now.Add(-8 * 24 * time.Hour)}
	q.ID[0] = 1
	r := fapp.Reservation{Request: q, State: fapp.Abgelehnt, Received: q.Created, Updated: q.Created}
	f.mu.Lock()
	if err := f.book.Restore(r); err != nil {
		t.Fatal(err)
	}
	f.replyTo[q.ID] = mustIdentity(t).Address()
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putTherapistLocked(&b, r)
	f.write(b)
	f.mu.Unlock()
	f.tick()
	if v, err := n.st.FAPPGet(therapistResKey(q.ID)); err != nil || v != nil {
		t.Errorf("a forgotten reservation is still stored: %d bytes, %v", len(v), err)
	}
}

// TestFAPPHoldLapses: a hold past its time lapses to ABGELAUFEN at the next
// tick, stored and announced on the subscription.
func TestFAPPHoldLapses(t *testing.T) {
	clk := &testClock{}
	n := openFAPPNode(t, newIssuer(t), clk)
	f := n.fapp
	now := clk.Now().Truncate(time.Second)
	q := fapp.Request{Slot: fapp.SlotRef{Slot: 1}, Start: now.Add(24 * time.Hour), Patient: mustIdentity(t).Public(), Created: now.Add(-time.Hour)}
	q.ID[0] = 2
	r := fapp.Reservation{Request: q, State: fapp.Gehalten, HoldUntil: now.Add(-time.Second), Received: q.Created, Updated: q.Created}
	f.mu.Lock()
	if err := f.book.Restore(r); err != nil {
		t.Fatal(err)
	}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, cancelSub, _ := n.Subscribe(ctx)
	defer cancelSub()
	f.tick()
	got := waitReservation(t, ctx, ev, "ABGELAUFEN")
	v, err := n.st.FAPPGet(therapistResKey(q.ID))
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := decodeTherapistRes(v)
	if err != nil || stored.State != fapp.Abgelaufen || got.ID != q.ID.String() {
		t.Errorf("stored %v (%v), event %+v", stored.State, err, got)
	}
}

// FuzzFAPPDirect: whatever arrives as a FAPP unicast message (a request or
// cancel for the therapist, a response or cancel for the patient, or junk)
// is handled without a panic, and nothing that is not a well-sealed,
// stamped request or a therapist's answer to an own request reaches either
// book. The node is a therapist with an offer, and the seeds include a
// genuine request for it, one for a start it does not offer (refused:
// the held refusal, the outbox) and patients' cancels that come before
// their requests (kept, their inbox entries left), so that mutations start
// from inputs that reach that code, not only from junk.
func FuzzFAPPDirect(f *testing.F) {
	clk := &testClock{}
	is := newIssuer(f)
	n, stop := startClocked(f, fappConfig(f, is), clk)
	f.Cleanup(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := becomeTherapist(f, ctx, n, is, clk)
	other := mustIdentity(&testing.T{})
	now := clk.Now()
	for _, body := range [][]byte{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, bytes.Repeat([]byte{1}, 200)} {
		sealed, err := fapp.SealMessage(randReader, other, n.id.Public(), body, now, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{toTherapist}, sealed...))
		f.Add(append([]byte{toPatient}, sealed...))
	}
	pb := fapp.NewPatientBook(fapp.PatientBookConfig{})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: offer.Slots[0].ID}
	seeded := map[fapp.RequestID]bool{}
	for _, start := range []time.Time{offer.Slots[0].Start, offer.Slots[0].Start.Add(time.Hour)} {
		pr, req, err := pb.NewRequest(randReader, n.id.Public(), ref, start, fapp.RequestOptions{}, now)
		if err != nil {
			f.Fatal(err)
		}
		c, err := pb.Cancel(randReader, pr.Request.ID, now)
		if err != nil {
			f.Fatal(err)
		}
		seeded[pr.Request.ID] = true
		f.Add(append([]byte{toTherapist}, c...))
		f.Add(append([]byte{toTherapist}, req...))
	}
	f.Add([]byte{})
	f.Add([]byte{toTherapist})
	f.Add([]byte{0x7f, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		n.fapp.onDirect(other.Address(), b, 0)
		n.fapp.mu.Lock()
		rs := n.fapp.book.List()
		n.fapp.mu.Unlock()
		n.fapp.patMu.Lock()
		patient := len(n.fapp.patient.List())
		n.fapp.patMu.Unlock()
		for _, r := range rs {
			if !seeded[r.Request.ID] {
				t.Fatalf("junk reached the therapist's book: %x", b)
			}
		}
		if patient != 0 {
			t.Fatalf("junk reached the patient's book: %x", b)
		}
	})
}

// TestFAPPAttackRelayStaleProfile: a relay answers a later remote query
// with the therapist's older announce and the older profile it names, both
// still valid. The node kept the newer announce but took the older profile,
// which the newer announce does not name: reserving failed ("the profile
// has not arrived yet") until some relay answered again.
func TestFAPPAttackRelayStaleProfile(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	id := mustIdentity(t)
	now := clk.Now().Truncate(time.Minute)
	cred, err := is.Issue(fapp.Credential{Serial: 5, Therapist: id.Compact(), Berufsgruppe: fapp.Psychotherapeut, RegistryID: "R-2",
		ValidFrom: now.Add(-time.Hour), ValidTo: now.Add(100 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	plz, _ := fapp.ParsePLZ("20095")
	version := func(seq uint32, name string) (*fapp.SlotAnnounce, *fapp.Profile) {
		p := &fapp.Profile{Identity: id.Public(), Sequence: seq, Issued: now, Name: name, Credential: *cred}
		rawP, err := fapp.SignProfile(id, p)
		if err != nil {
			t.Fatal(err)
		}
		a := &fapp.SlotAnnounce{Profile: mustRef(p), Sequence: seq, Issued: now, Expires: now.Add(24 * time.Hour), PLZ: plz,
			Verfahren: fapp.SetOf(fapp.Verhaltenstherapie), Kostentraeger: fapp.SetOf(fapp.GKV), Altersgruppen: fapp.SetOf(fapp.Erwachsene),
			Slots: []fapp.Slot{{ID: 1, Terminart: fapp.Sprechstunde, Verfahren: fapp.Verhaltenstherapie, Setting: fapp.Einzel,
				Modalitaet: fapp.Praxis, Voraussetzung: fapp.VoraussetzungKeine, Start: now.Add(48 * time.Hour), Dauer: 25, Status: fapp.SlotFrei}}}
		rawA, err := fapp.SignAnnounce(id, a, now)
		if err != nil {
			t.Fatal(err)
		}
		pa, err := fapp.ParseSlotAnnounce(rawA, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		pp, err := fapp.ParseProfile(rawP)
		if err != nil {
			t.Fatal(err)
		}
		return pa, pp
	}
	a1, p1 := version(1, "Praxis Alt")
	a2, p2 := version(2, "Praxis Neu")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rememberLocked(a2, p2, now)
	f.rememberLocked(a1, p1, now) // the stale answer
	if _, _, err := f.prepareReserveLocked(fapp.SlotRef{Therapist: a2.Therapist, Slot: 1}, time.Time{}, now); err != nil {
		t.Errorf("reserving after a stale answer: %v", err)
	}
}
