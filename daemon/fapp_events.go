package daemon

import (
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// Reservation events on the subscription (rpcapi.EventFAPPReservation):
// one per state change, on the therapist's node and on the patient's. They
// carry the reservation as the API shows it; nothing of them is logged.

func (f *fappNode) therapistEvent(r fapp.Reservation) rpcapi.Event {
	res := f.therapistAPILocked(r)
	return rpcapi.Event{Kind: rpcapi.EventFAPPReservation, ID: res.ID, FAPPReservation: &res}
}

func (f *fappNode) patientEvent(r fapp.PatientReservation) rpcapi.Event {
	res := f.patientAPILocked(r)
	return rpcapi.Event{Kind: rpcapi.EventFAPPReservation, ID: res.ID, FAPPReservation: &res}
}

func (f *fappNode) publishEvents(evs []rpcapi.Event) {
	for _, ev := range evs {
		f.n.hub.publish(ev)
	}
	f.signal()
}
