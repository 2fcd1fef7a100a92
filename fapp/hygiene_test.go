package fapp

import (
	"slices"
	"testing"
	"time"
)

// TestPatientBookSweep: finished reservations leave the patient's book;
// those that still matter stay.
func TestPatientBookSweep(t *testing.T) {
	p := NewPatientBook(PatientBookConfig{})
	day := 24 * time.Hour
	cases := []struct {
		st             ReservationState
		created, start time.Time
		updated        time.Time
		gone           bool
	}{
		{Abgelehnt, testNow.Add(-9 * day), testNow.Add(day), testNow.Add(-8 * day), true},
		{Abgelehnt, testNow.Add(-9 * day), testNow.Add(day), testNow.Add(-time.Hour), false}, // declined late: shown a while
		{StorniertPatient, testNow.Add(-9 * day), testNow.Add(day), testNow.Add(-8 * day), true},
		{Bestaetigt, testNow.Add(-30 * day), testNow.Add(-8 * day), testNow.Add(-29 * day), true},
		{Bestaetigt, testNow.Add(-30 * day), testNow.Add(-6 * day), testNow.Add(-29 * day), false},
		{Angefragt, testNow.Add(-15 * day), testNow.Add(day), testNow.Add(-15 * day), true},
		{Angefragt, testNow.Add(-13 * day), testNow.Add(day), testNow.Add(-13 * day), false}, // an answer may still come
		{Gehalten, testNow.Add(-9 * day), testNow.Add(day), testNow.Add(-9 * day), false},
	}
	var want []RequestID
	for i, c := range cases {
		q := Request{Slot: SlotRef{Therapist: keyOf(t, 1), Slot: 1}, Start: c.start, Patient: testIdentity(t, 2).Public(), Created: c.created}
		q.ID[0] = byte(i + 1)
		r := PatientReservation{Request: q, Identity: testIdentity(t, byte(20+i)), Therapist: testIdentity(t, 1).Public(), State: c.st, Updated: c.updated}
		if c.st == Gehalten {
			r.HoldUntil = testNow.Add(day)
		}
		if err := p.Restore(r); err != nil {
			t.Fatal(err)
		}
		if c.gone {
			want = append(want, q.ID)
		}
	}
	if got := p.Sweep(testNow); !slices.Equal(got, want) {
		t.Fatalf("swept %v, want %v", got, want)
	}
	if n := len(p.List()); n != len(cases)-len(want) {
		t.Fatalf("%d reservations left, want %d", n, len(cases)-len(want))
	}
}

// TestIndexDropRegion: a node that stops following a region drops its
// announces and their profiles, and only those.
func TestIndexDropRegion(t *testing.T) {
	x := NewIndex(IndexConfig{})
	for seed, plz := range map[byte]string{1: "10437", 2: "10115", 3: "20095"} {
		a := testAnnounce(t, 1)
		a.PLZ = mustPLZ(t, plz)
		raw := signed(t, seed, a)
		got, err := ParseSlotAnnounce(raw, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Add(got, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if n := x.DropRegion(10); n != 2 || x.Len() != 1 || x.RegionLen(10) != 0 || x.RegionLen(20) != 1 {
		t.Fatalf("dropped %d; left %d (region 10: %d, 20: %d)", n, x.Len(), x.RegionLen(10), x.RegionLen(20))
	}
	if x.DropRegion(100) != 0 {
		t.Fatal("dropped announces of region 100")
	}
}
