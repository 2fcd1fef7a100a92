package fapp

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestPropertyBookNeverDoubleBooks: whatever the therapist and the patients
// do, in any order and at any time, at most one reservation holds or has a
// slot occurrence, SlotStatus agrees with the reservations, and every state
// change is one the table allows.
func TestPropertyBookNeverDoubleBooks(t *testing.T) {
	w := newResWorld(t)
	// A pool of requests for two occurrences of one slot, made once (sealing
	// is slow); each rapid run receives a fresh selection of them.
	type made struct {
		pr     PatientReservation
		sealed []byte
	}
	var pool []made
	starts := []time.Time{BerlinTime(2026, 12, 3, 18, 0), BerlinTime(2026, 12, 10, 18, 0)}
	for i := range 6 {
		w.start = starts[i%2]
		pr, sealed := w.request(t, testNow)
		pool = append(pool, made{pr, sealed})
	}
	rapid.Check(t, func(rt *rapid.T) {
		book, _ := NewBook(BookConfig{Identity: w.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8})})
		now := testNow
		prev := map[RequestID]ReservationState{}
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			m := rapid.SampledFrom(pool).Draw(rt, "request")
			id := m.pr.Request.ID
			switch rapid.IntRange(0, 6).Draw(rt, "action") {
			case 0:
				book.Open(m.sealed, now)
			case 1:
				book.Hold(id, now.Add(time.Duration(rapid.IntRange(1, 120).Draw(rt, "hold"))*time.Minute), "", now)
			case 2:
				book.Confirm(id, "", now)
			case 3:
				book.Decline(id, "", now)
			case 4:
				book.CancelByTherapist(id, now)
			case 5:
				c := &Cancel{ID: id, Slot: m.pr.Request.Slot, By: StorniertPatient, Created: now}
				c.Sign(m.pr.Identity)
				book.ApplyCancel(c, m.pr.Identity.Compact(), now)
			case 6:
				now = now.Add(time.Duration(rapid.IntRange(0, 90).Draw(rt, "advance")) * time.Minute)
				book.Expire(now)
			}
			checkBook(rt, book, prev, starts)
		}
	})
}

func checkBook(t *rapid.T, book *Book, prev map[RequestID]ReservationState, starts []time.Time) {
	active := map[int64]RequestID{}
	for _, r := range book.List() {
		id := r.Request.ID
		if old, ok := prev[id]; ok && old != r.State && !reachable(old, r.State) {
			t.Fatalf("%v moved %v -> %v", id, old, r.State)
		}
		prev[id] = r.State
		if r.State == Gehalten || r.State == Bestaetigt {
			k := r.Request.Start.Unix()
			if other, ok := active[k]; ok {
				t.Fatalf("%v and %v both occupy %v", other, id, r.Request.Start)
			}
			active[k] = id
		}
	}
	for _, s := range starts {
		st := book.SlotStatus(1, s)
		id, taken := active[s.Unix()]
		switch {
		case !taken && st != SlotFrei:
			t.Fatalf("slot at %v is %v with no active reservation", s, st)
		case taken:
			r, _ := book.Get(id)
			if (r.State == Bestaetigt) != (st == SlotVergeben) || (r.State == Gehalten) != (st == SlotGehalten) {
				t.Fatalf("slot at %v is %v, reservation %v", s, st, r.State)
			}
		}
	}
}

// reachable reports whether one event of the table leads from a to b.
func reachable(a, b ReservationState) bool {
	for ev := Event(1); ev <= EventCancelTherapist; ev++ {
		if to, err := Transition(a, ev); err == nil && to == b {
			return true
		}
	}
	return false
}

// TestPropertyBookBounds: whatever arrives and whatever the therapist
// does, a place never has more than MaxPerPlace requests waiting, the book
// never more than MaxReservations live ones, and after Expire (which every
// call runs first) never more than MaxReservations finished ones.
func TestPropertyBookBounds(t *testing.T) {
	f := newFloodWorld(t, 8)
	var pool []*Request
	for i := range 48 {
		// Made at different seconds: the book refuses a request made no
		// later than one it forgot (ForgotUntil).
		made := testNow.Add(time.Duration(i*7%60) * time.Second)
		pool = append(pool, f.req(t, uint16(1+i%3), f.start.Add(time.Duration(i%2)*time.Hour), uint8(8+i%3), made))
	}
	rapid.Check(t, func(rt *rapid.T) {
		book, _ := NewBook(BookConfig{Identity: f.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}),
			MaxReservations: 8, MaxPerPlace: 3})
		now := testNow
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			q := rapid.SampledFrom(pool).Draw(rt, "request")
			switch rapid.IntRange(0, 4).Draw(rt, "action") {
			case 0, 1:
				book.Receive(q, f.eph.Compact(), now)
			case 2:
				book.Refuse(q, f.eph.Compact(), "", now)
			case 3:
				book.Confirm(q.ID, "", now)
				book.DeclineRivals(q.ID, "", now)
			case 4:
				book.Decline(q.ID, "", now)
			}
			book.TakeDeclined()
			book.Expire(now)
			checkBookBounds(rt, book, 8, 3)
			now = now.Add(time.Second)
		}
	})
}

func checkBookBounds(t *rapid.T, book *Book, maxRes, perPlace int) {
	live, done := 0, 0
	waiting := map[[2]int64]int{}
	for _, r := range book.List() {
		switch {
		case r.State.Terminal():
			done++
		default:
			live++
		}
		if r.State == Angefragt {
			waiting[[2]int64{int64(r.Request.Slot.Slot), r.Request.Start.Unix()}]++
		}
	}
	if live > maxRes || done > maxRes {
		t.Fatalf("%d live, %d finished, bound %d", live, done, maxRes)
	}
	for k, n := range waiting {
		if n > perPlace {
			t.Fatalf("place %v has %d waiting, quota %d", k, n, perPlace)
		}
	}
}

// TestPropertyFinishedStaysFinished: whatever arrives, whatever the
// therapist does, and across restarts (the stored reservations restored,
// a fresh stamp verifier, ForgotUntil given back), a request that was
// finished is never taken as new again, though the book forgets finished
// ones beyond its bound.
func TestPropertyFinishedStaysFinished(t *testing.T) {
	f := newFloodWorld(t, 2)
	var pool []*Request
	for i := range 10 {
		made := testNow.Add(time.Duration(i*7%10) * time.Second)
		pool = append(pool, f.req(t, uint16(1+i%3), f.start, 8, made))
	}
	cfg := func() BookConfig {
		return BookConfig{Identity: f.therapist, Stamps: NewStampVerifier(StampConfig{MinBits: 8}), MaxReservations: 2}
	}
	rapid.Check(t, func(rt *rapid.T) {
		book, _ := NewBook(cfg())
		finished := map[RequestID]bool{}
		now := testNow.Add(10 * time.Second)
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			q := rapid.SampledFrom(pool).Draw(rt, "request")
			switch rapid.IntRange(0, 3).Draw(rt, "action") {
			case 0, 1:
				r, err := book.Receive(q, f.eph.Compact(), now)
				if err == nil && finished[q.ID] {
					rt.Fatalf("request %v, finished before, taken again as %v", q.ID, r.State)
				}
				book.Decline(q.ID, "", now)
			case 2:
				book.Sweep(now)
			case 3: // a restart
				b, _ := NewBook(cfg())
				for _, r := range book.List() {
					b.Restore(r)
				}
				b.RestoreForgotUntil(book.ForgotUntil())
				book = b
			}
			book.TakeDeclined()
			for _, r := range book.List() {
				if r.State.Terminal() {
					finished[r.Request.ID] = true
				}
			}
			now = now.Add(time.Second)
		}
	})
}
