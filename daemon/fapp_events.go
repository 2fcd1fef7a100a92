package daemon

import (
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// Reservation events on the subscription: one per state change, on the
// therapist's node and on the patient's. They carry the reservation as the
// API shows it; nothing of them is logged.

func (f *fappNode) therapistEvent(r fapp.Reservation) rpcapi.Event {
	return rpcapi.Event{Kind: "fapp-reservation", ID: r.Request.ID.String()}
}

func (f *fappNode) patientEvent(r fapp.PatientReservation) rpcapi.Event {
	return rpcapi.Event{Kind: "fapp-reservation", ID: r.Request.ID.String()}
}

func (f *fappNode) publishEvents(evs []rpcapi.Event) {
	for _, ev := range evs {
		f.n.hub.publish(ev)
	}
}
