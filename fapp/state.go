package fapp

import "fmt"

// Event is something that happens to a reservation.
type Event uint8

// The Events.
const (
	EventHold            Event = iota + 1 // the therapist holds the slot (GEHALTEN)
	EventConfirm                          // the therapist confirms (BESTAETIGT)
	EventDecline                          // the therapist declines (ABGELEHNT)
	EventExpire                           // the hold or the unanswered request ran out (ABGELAUFEN)
	EventCancelPatient                    // the patient cancels (STORNIERT_PATIENT)
	EventCancelTherapist                  // the therapist cancels (STORNIERT_THERAPEUT)
)

var eventNames = []string{"", "HOLD", "CONFIRM", "DECLINE", "EXPIRE", "CANCEL_PATIENT", "CANCEL_THERAPIST"}

// String returns the upper-case name, e.g. "CONFIRM".
func (e Event) String() string { return enumName(eventNames, uint8(e), "Event") }

// transitions is the whole state machine: every pair not listed is
// forbidden. A request may be confirmed without a hold; a therapist who does
// not want a request declines it (a cancel is for an accepted one); a hold
// is not extended (the therapist confirms or lets it lapse); a confirmed
// reservation does not expire, it is cancelled.
var transitions = map[ReservationState]map[Event]ReservationState{
	Angefragt: {
		EventHold: Gehalten, EventConfirm: Bestaetigt, EventDecline: Abgelehnt,
		EventExpire: Abgelaufen, EventCancelPatient: StorniertPatient,
	},
	Gehalten: {
		EventConfirm: Bestaetigt, EventDecline: Abgelehnt, EventExpire: Abgelaufen,
		EventCancelPatient: StorniertPatient, EventCancelTherapist: StorniertTherapeut,
	},
	Bestaetigt: {
		EventCancelPatient: StorniertPatient, EventCancelTherapist: StorniertTherapeut,
	},
}

// Transition returns the state a reservation in state from moves to on ev,
// or ErrTransition.
func Transition(from ReservationState, ev Event) (ReservationState, error) {
	if to, ok := transitions[from][ev]; ok {
		return to, nil
	}
	return from, fmt.Errorf("reservation %v: %v: %w", from, ev, ErrTransition)
}

// eventOfResponse maps a response's state to its event.
func eventOfResponse(s ReservationState) (Event, bool) {
	switch s {
	case Gehalten:
		return EventHold, true
	case Bestaetigt:
		return EventConfirm, true
	case Abgelehnt:
		return EventDecline, true
	}
	return 0, false
}
