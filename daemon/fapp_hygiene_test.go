package daemon

import (
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
)

// TestFAPPStoreHygiene: while the node runs, the FAPP ticker takes out of
// the store (and the index) the announces (and their profiles) of a region
// the node stopped following, expired announces, and the patient's
// finished reservations; what still matters stays. Before, all of it stayed
// in badger until a restart, or for ever.
func TestFAPPStoreHygiene(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk) // follows region 10
	f := n.fapp
	now := clk.Now()
	keep, keepP := foreignOffer(t, mustIdentity(t), is, now, "10115")
	short, _ := foreignOffer(t, mustIdentity(t), is, now.Add(-23*time.Hour-50*time.Minute), "10117") // expires in 10 min
	other, otherP := foreignOffer(t, mustIdentity(t), is, now, "20095")
	for _, fr := range []struct {
		r    fapp.Region
		body []byte
	}{{10, keep}, {10, keepP}, {10, short}, {20, other}, {20, otherP}} {
		f.onRegionFrame(fr.r, fr.body, now)
	}
	announces := func() (keys []string) {
		n.st.FAPPScan("f/a/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		return keys
	}
	profiles := func() (keys []string) {
		n.st.FAPPScan("f/p/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		return keys
	}
	if a, p := announces(), profiles(); len(a) != 3 || len(p) != 2 {
		t.Fatalf("set-up: %d announces and %d profiles stored, want 3 and 2", len(a), len(p))
	}

	// The patient's reservations: one declined a week and more ago, one
	// confirmed for an appointment long past, one declined today, one
	// confirmed for next week.
	pat := mustIdentity(t).Public()
	var finished, current []fapp.RequestID
	for i, c := range []struct {
		st      fapp.ReservationState
		start   time.Time
		updated time.Time
	}{
		{fapp.Abgelehnt, now.Add(24 * time.Hour), now.Add(-8 * 24 * time.Hour)},
		{fapp.Bestaetigt, now.Add(-8 * 24 * time.Hour), now.Add(-20 * 24 * time.Hour)},
		{fapp.Abgelehnt, now.Add(24 * time.Hour), now.Add(-time.Hour)},
		{fapp.Bestaetigt, now.Add(7 * 24 * time.Hour), now.Add(-time.Hour)},
	} {
		q := fapp.Request{Slot: fapp.SlotRef{Slot: 1}, Start: c.start, Patient: mustIdentity(t).Public(), Created: c.updated.Add(-time.Hour)}
		q.ID[0] = byte(10 + i)
		r := fapp.PatientReservation{Request: q, Identity: mustIdentity(t), Therapist: pat, State: c.st, Updated: c.updated}
		f.patMu.Lock()
		if err := f.patient.Restore(r); err != nil {
			t.Fatal(err)
		}
		f.patMu.Unlock()
		b := store.FAPPBatch{Put: map[string][]byte{}}
		f.mu.Lock()
		f.putPatientLocked(&b, r)
		f.mu.Unlock()
		f.write(b)
		if i < 2 {
			finished = append(finished, q.ID)
		} else {
			current = append(current, q.ID)
		}
	}

	clk.advance(15 * time.Minute) // the short announce expires
	f.tick()
	if a := announces(); len(a) != 1 || a[0] != announceKey(mustAnnounce(t, keep, now).Therapist) {
		t.Errorf("announces stored after the tick: %v, want only region 10's current one", a)
	}
	if p := profiles(); len(p) != 1 || p[0] != profileKey(mustAnnounce(t, keep, now).Therapist) {
		t.Errorf("profiles stored after the tick: %v, want only the current announce's", p)
	}
	f.mu.Lock()
	held, held20 := f.idx.Len(), f.idx.RegionLen(20)
	f.mu.Unlock()
	if held != 1 || held20 != 0 {
		t.Errorf("index holds %d announces (%d of region 20), want 1 (0)", held, held20)
	}
	for _, id := range finished {
		if v, _ := n.st.FAPPGet(patientResKey(id)); v != nil {
			t.Errorf("finished reservation %v still stored", id)
		}
	}
	for _, id := range current {
		if v, _ := n.st.FAPPGet(patientResKey(id)); v == nil {
			t.Errorf("current reservation %v left the store", id)
		}
	}
}

func mustAnnounce(t *testing.T, body []byte, now time.Time) *fapp.SlotAnnounce {
	t.Helper()
	_, raw, err := fapp.ParseBroadcast(body)
	if err != nil {
		t.Fatal(err)
	}
	a, err := fapp.ParseSlotAnnounce(raw, now, clockSkew)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
