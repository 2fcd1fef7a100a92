package fapp

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestBookFollowsTheTable drives a therapist's Book from every state with
// every action and checks it moves exactly as Transition says (or refuses).
func TestBookFollowsTheTable(t *testing.T) {
	w := newResWorld(t)
	pr, _ := w.request(t, testNow)
	patient := pr.Identity
	actions := []struct {
		ev Event
		do func(b *Book, id RequestID, now time.Time) error
	}{
		{EventHold, func(b *Book, id RequestID, now time.Time) error {
			_, err := b.Hold(id, now.Add(time.Hour), "", now)
			return err
		}},
		{EventConfirm, func(b *Book, id RequestID, now time.Time) error { _, err := b.Confirm(id, "", now); return err }},
		{EventDecline, func(b *Book, id RequestID, now time.Time) error { _, err := b.Decline(id, "", now); return err }},
		{EventCancelTherapist, func(b *Book, id RequestID, now time.Time) error { _, err := b.CancelByTherapist(id, now); return err }},
		{EventCancelPatient, func(b *Book, id RequestID, now time.Time) error {
			c := &Cancel{ID: id, Slot: pr.Request.Slot, By: StorniertPatient, Created: now}
			c.Sign(patient)
			return b.ApplyCancel(c, patient.Compact(), now)
		}},
	}
	for from := ReservationState(1); from.Valid(); from++ {
		for _, a := range actions {
			t.Run(fmt.Sprintf("%v/%v", from, a.ev), func(t *testing.T) {
				b, _ := NewBook(BookConfig{Identity: w.therapist})
				r := Reservation{Request: pr.Request, State: from, Received: testNow, Updated: testNow}
				if from == Gehalten {
					r.HoldUntil = testNow.Add(time.Hour)
				}
				if err := b.Restore(r); err != nil {
					t.Fatal(err)
				}
				err := a.do(b, pr.Request.ID, testNow)
				got, _ := b.Get(pr.Request.ID)
				want, terr := Transition(from, a.ev)
				if terr != nil {
					if !errors.Is(err, ErrTransition) || got.State != from {
						t.Fatalf("forbidden: %v, state %v", err, got.State)
					}
				} else if err != nil || got.State != want {
					t.Fatalf("allowed: %v, state %v, want %v", err, got.State, want)
				}
			})
		}
		// EXPIRE happens by time: a hold at its end, a request after its TTL.
		t.Run(fmt.Sprintf("%v/EXPIRE", from), func(t *testing.T) {
			b, _ := NewBook(BookConfig{Identity: w.therapist})
			r := Reservation{Request: pr.Request, State: from, HoldUntil: testNow.Add(time.Hour)}
			if from != Gehalten {
				r.HoldUntil = time.Time{}
			}
			b.Restore(r)
			at := testNow.Add(DefaultRequestTTL + time.Second) // past the request's TTL
			if from == Gehalten {
				at = r.HoldUntil // the hold's end, long before
			}
			b.Expire(at)
			got, err := b.Get(pr.Request.ID)
			want, terr := Transition(from, EventExpire)
			switch {
			case terr == nil && (err != nil || got.State != want):
				t.Fatalf("expiry: %v %v, want %v", got.State, err, want)
			case terr != nil && err == nil && got.State != from:
				t.Fatalf("expired from %v to %v", from, got.State)
			case terr != nil && err != nil:
				t.Fatalf("%v forgotten by Expire", from)
			}
		})
	}
}

// TestPatientBookFollowsTheTable does the same for the patient's side.
func TestPatientBookFollowsTheTable(t *testing.T) {
	w := newResWorld(t)
	pr, _ := w.request(t, testNow)
	respond := func(st ReservationState) func(p *PatientBook, now time.Time) error {
		return func(p *PatientBook, now time.Time) error {
			m := &Response{ID: pr.Request.ID, Slot: pr.Request.Slot, State: st, Created: now}
			if st == Gehalten {
				m.HoldUntil = now.Add(time.Hour)
			}
			if err := m.Sign(w.therapist); err != nil {
				t.Fatal(err)
			}
			return p.ApplyResponse(m, now)
		}
	}
	actions := []struct {
		ev Event
		do func(p *PatientBook, now time.Time) error
	}{
		{EventHold, respond(Gehalten)},
		{EventConfirm, respond(Bestaetigt)},
		{EventDecline, respond(Abgelehnt)},
		{EventCancelPatient, func(p *PatientBook, now time.Time) error {
			_, err := p.Cancel(w.rand, pr.Request.ID, now)
			return err
		}},
		{EventCancelTherapist, func(p *PatientBook, now time.Time) error {
			c := &Cancel{ID: pr.Request.ID, Slot: pr.Request.Slot, By: StorniertTherapeut, Created: now}
			c.Sign(w.therapist)
			return p.ApplyCancel(c, now)
		}},
	}
	for from := ReservationState(1); from.Valid(); from++ {
		for _, a := range actions {
			t.Run(fmt.Sprintf("%v/%v", from, a.ev), func(t *testing.T) {
				p := NewPatientBook(PatientBookConfig{})
				r := pr
				r.State = from
				if from == Gehalten {
					r.HoldUntil = testNow.Add(time.Hour)
				}
				if err := p.Restore(r); err != nil {
					t.Fatal(err)
				}
				err := a.do(p, testNow)
				got, _ := p.Get(pr.Request.ID)
				want, terr := Transition(from, a.ev)
				if a.ev == EventCancelTherapist && (from == Angefragt || from == Abgelaufen) {
					// The patient's one exception (patientTransition): a
					// cancel that overtook the hold or confirmation it
					// cancels. The late confirmation of a lapsed hold is
					// TestAttackLateConfirmAfterHoldLapsed's.
					want, terr = StorniertTherapeut, nil
				}
				if terr != nil {
					if !errors.Is(err, ErrTransition) || got.State != from {
						t.Fatalf("forbidden: %v, state %v", err, got.State)
					}
				} else if err != nil || got.State != want {
					t.Fatalf("allowed: %v, state %v, want %v", err, got.State, want)
				}
			})
		}
	}
}
