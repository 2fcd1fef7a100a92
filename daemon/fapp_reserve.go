package daemon

import (
	"encoding/json"
	"fmt"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// Reservations travel as sealed-sender unicast envelopes of type FAPP
// (protocol.TypeFAPP), so the engine's custody keeps a request while the
// therapist's node is offline. The body is one kind byte and a message the
// fapp package sealed end to end (a second envelope inside, sealed to the
// therapist's profile identity or to the patient's ephemeral identity):
//
//	0x01 | sealed    to the therapist: a request or the patient's cancel
//	0x02 | sealed    to the patient's node: a response or the therapist's cancel
//
// Forwarders see an envelope of type FAPP to an address, nothing else. The
// therapist's node learns the patient node's address (the outer envelope's
// sender, which the engine reveals only to the recipient): it is where
// responses go. A delivered message first lands in the inbox, atomically
// with the engine's delivered record; the FAPP side takes it from there and
// removes it in the same transaction that stores what it caused, so a crash
// in between processes it again at the next start, never twice.
const (
	toTherapist = 0x01
	toPatient   = 0x02
)

// therapistRecord is a stored therapist-side reservation (JSON, internal).
type therapistRecord struct {
	Request   []byte           `json:"request"`
	State     uint8            `json:"state"`
	HoldUntil time.Time        `json:"hold_until"`
	Received  time.Time        `json:"received"`
	Updated   time.Time        `json:"updated"`
	ReplyTo   protocol.Address `json:"reply_to"`
}

// patientRecord is a stored patient-side reservation. Identity is the
// ephemeral identity's secret key: whoever has it can cancel.
type patientRecord struct {
	Request      []byte    `json:"request"`
	Identity     []byte    `json:"identity"`
	Therapist    []byte    `json:"therapist"`
	State        uint8     `json:"state"`
	HoldUntil    time.Time `json:"hold_until"`
	Nachricht    string    `json:"nachricht"`
	Confirmation []byte    `json:"confirmation,omitempty"`
	Updated      time.Time `json:"updated"`
}

func encodeTherapistRes(r fapp.Reservation, replyTo protocol.Address) ([]byte, error) {
	q, err := r.Request.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(therapistRecord{Request: q, State: uint8(r.State), HoldUntil: r.HoldUntil, Received: r.Received,
		Updated: r.Updated, ReplyTo: replyTo})
}

func decodeTherapistRes(v []byte) (fapp.Reservation, protocol.Address, error) {
	var rec therapistRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return fapp.Reservation{}, protocol.Address{}, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	q, err := parseRequest(rec.Request)
	if err != nil {
		return fapp.Reservation{}, protocol.Address{}, err
	}
	return fapp.Reservation{Request: *q, State: fapp.ReservationState(rec.State), HoldUntil: rec.HoldUntil,
		Received: rec.Received, Updated: rec.Updated}, rec.ReplyTo, nil
}

func parseRequest(b []byte) (*fapp.Request, error) {
	m, err := fapp.ParseMessage(b)
	if err != nil {
		return nil, err
	}
	q, ok := m.(*fapp.Request)
	if !ok {
		return nil, fmt.Errorf("%w: stored reservation holds a %T", store.ErrCorrupt, m)
	}
	return q, nil
}

func encodePatientRes(r fapp.PatientReservation) ([]byte, error) {
	q, err := r.Request.MarshalBinary()
	if err != nil {
		return nil, err
	}
	id, err := r.Identity.MarshalBinary()
	if err != nil {
		return nil, err
	}
	th, err := r.Therapist.MarshalBinary()
	if err != nil {
		return nil, err
	}
	rec := patientRecord{Request: q, Identity: id, Therapist: th, State: uint8(r.State), HoldUntil: r.HoldUntil,
		Nachricht: r.Nachricht, Updated: r.Updated}
	if r.Confirmation != nil {
		if rec.Confirmation, err = r.Confirmation.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	return json.Marshal(rec)
}

func decodePatientRes(v []byte) (fapp.PatientReservation, error) {
	var rec patientRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return fapp.PatientReservation{}, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	q, err := parseRequest(rec.Request)
	if err != nil {
		return fapp.PatientReservation{}, err
	}
	r := fapp.PatientReservation{Request: *q, State: fapp.ReservationState(rec.State), HoldUntil: rec.HoldUntil,
		Nachricht: rec.Nachricht, Updated: rec.Updated}
	if r.Identity, err = protocol.ParseIdentity(rec.Identity); err != nil {
		return r, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	if r.Therapist, err = protocol.ParsePublicIdentity(rec.Therapist); err != nil {
		return r, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	if len(rec.Confirmation) > 0 {
		m, err := fapp.ParseMessage(rec.Confirmation)
		if err != nil {
			return r, err
		}
		if c, ok := m.(*fapp.Response); ok {
			r.Confirmation = c
		}
	}
	return r, nil
}

// putTherapistLocked returns the batch entry storing a therapist-side
// reservation.
func (f *fappNode) putTherapistLocked(b *store.FAPPBatch, r fapp.Reservation) {
	v, err := encodeTherapistRes(r, f.replyTo[r.Request.ID])
	if err != nil {
		f.n.log.Error("cannot encode a FAPP reservation", "err", err)
		return
	}
	b.Put[therapistResKey(r.Request.ID)] = v
}

func (f *fappNode) putPatientLocked(b *store.FAPPBatch, r fapp.PatientReservation) {
	v, err := encodePatientRes(r)
	if err != nil {
		f.n.log.Error("cannot encode a FAPP reservation", "err", err)
		return
	}
	b.Put[patientResKey(r.Request.ID)] = v
}

// takeDirect handles the FAPP messages among a Ready's direct deliveries
// (seqs are their inbox sequence numbers) and returns the others. Loop
// only.
func (f *fappNode) takeDirect(ds []routing.Delivery, seqs []uint64) ([]routing.Delivery, []uint64) {
	var rest []routing.Delivery
	var restSeqs []uint64
	for i, d := range ds {
		if d.Type != protocol.TypeFAPP {
			rest, restSeqs = append(rest, d), append(restSeqs, seqs[i])
			continue
		}
		f.onDirect(d.From, d.Created.Time(), d.Body, seqs[i])
	}
	return rest, restSeqs
}

// onDirect handles one FAPP unicast message and removes its inbox entry in
// the same write as what it caused. Loop (or start-up) only.
func (f *fappNode) onDirect(from protocol.Address, created time.Time, body []byte, seq uint64) {
	now := f.n.now()
	b := store.FAPPBatch{Put: map[string][]byte{}, Ack: []uint64{seq}}
	f.mu.Lock()
	var events []rpcapi.Event
	switch {
	case len(body) < 2:
		f.drop("reservation", fapp.ErrTruncated)
	case body[0] == toTherapist:
		events = f.onTherapistMsgLocked(&b, from, created, body[1:], now)
	case body[0] == toPatient:
		events = f.onPatientMsgLocked(&b, body[1:], now)
	default:
		f.drop("reservation", fapp.ErrUnknownVersion)
	}
	f.mu.Unlock()
	if f.write(b) == nil {
		f.publishEvents(events)
	}
}

// onTherapistMsgLocked applies a request or a patient's cancel. A request
// may have waited in custody while this node was offline: its stamp is
// judged at the time its envelope was made (bounded by the request
// lifetime), not at arrival, or every request that waited longer than a
// stamp bucket would be refused.
func (f *fappNode) onTherapistMsgLocked(b *store.FAPPBatch, from protocol.Address, created time.Time, sealed []byte, now time.Time) []rpcapi.Event {
	at := now
	if created.Before(now) {
		at = created
		if floor := now.Add(-fapp.DefaultRequestTTL); at.Before(floor) {
			at = floor
		}
	}
	if f.template == nil {
		f.drop("reservation", fapp.ErrNotFound)
		return nil
	}
	// The books expire lapsed holds inside every call, and only this
	// writes that back (store, announce status, event): run it first.
	f.expireLocked(now)
	m, sender, err := fapp.OpenMessage(f.n.id, sealed, at)
	if err != nil {
		f.drop("reservation", err)
		return nil
	}
	var r fapp.Reservation
	switch m := m.(type) {
	case *fapp.Request:
		if !f.offersLocked(m) {
			err = fmt.Errorf("request for slot %v: %w", m.Slot, fapp.ErrNotFound)
			break
		}
		if r, err = f.book.Receive(m, sender, at); err == nil {
			f.replyTo[r.Request.ID] = from
		}
	case *fapp.Cancel:
		if err = f.book.ApplyCancel(m, sender, now); err == nil {
			r, err = f.book.Get(m.ID)
		}
	default:
		err = fmt.Errorf("a therapist receives no %T: %w", m, fapp.ErrMalformed)
	}
	if err != nil {
		f.drop("reservation", err)
		return nil
	}
	f.stats.add("reservations_received", 1)
	f.putTherapistLocked(b, r)
	f.slotStatusLocked(r, now)
	return []rpcapi.Event{f.therapistEvent(r)}
}

// offersLocked reports whether q asks for one of the own slots.
func (f *fappNode) offersLocked(q *fapp.Request) bool {
	if q.Slot.Therapist != fapp.TherapistKeyOf(f.n.id.Compact()) {
		return false
	}
	for _, s := range f.pub.Slots() {
		if s.ID == q.Slot.Slot {
			return true
		}
	}
	return false
}

func (f *fappNode) onPatientMsgLocked(b *store.FAPPBatch, sealed []byte, now time.Time) []rpcapi.Event {
	f.expireLocked(now)
	r, err := f.patient.Open(sealed, now)
	if err != nil {
		f.drop("reservation", err)
		return nil
	}
	f.stats.add("responses_received", 1)
	f.putPatientLocked(b, r)
	return []rpcapi.Event{f.patientEvent(r)}
}

// expireLocked runs both books' expiry.
func (f *fappNode) expireLocked(now time.Time) {
	b := store.FAPPBatch{Put: map[string][]byte{}}
	var events []rpcapi.Event
	for _, r := range f.book.Expire(now) {
		f.putTherapistLocked(&b, r)
		f.slotStatusLocked(r, now)
		events = append(events, f.therapistEvent(r))
	}
	for _, r := range f.patient.Expire(now) {
		f.putPatientLocked(&b, r)
		events = append(events, f.patientEvent(r))
	}
	for _, id := range f.forgotten {
		b.Delete = append(b.Delete, therapistResKey(id))
		delete(f.replyTo, id)
	}
	f.forgotten = nil
	if f.write(b) == nil {
		f.publishEvents(events)
	}
}

// reserveLocked makes a reservation request for slot ref at start (zero:
// the slot's next start) and queues it for the therapist.
func (f *fappNode) reserveLocked(ref fapp.SlotRef, start time.Time, opts fapp.RequestOptions, now time.Time) (fapp.PatientReservation, error) {
	a, p := f.idx.Get(ref.Therapist), f.idx.Profile(ref.Therapist)
	if e := f.remote[ref.Therapist]; e != nil && (a == nil || e.a.Sequence > a.Sequence) {
		a, p = e.a, e.p
	}
	if a == nil {
		return fapp.PatientReservation{}, fmt.Errorf("%w: no announce of therapist %v is known (query first)", rpcapi.ErrInvalidParams, ref.Therapist)
	}
	if p == nil || mustRef(p) != a.Profile {
		if f.following(a.Region()) {
			f.askProfileLocked(a.Region(), a.Therapist, a.Profile, now)
		}
		return fapp.PatientReservation{}, fmt.Errorf("%w: the therapist's profile (with the key to seal to) has not arrived yet; try again shortly", rpcapi.ErrRefused)
	}
	slot, ok := findSlot(a, ref.Slot)
	switch {
	case !ok:
		return fapp.PatientReservation{}, fmt.Errorf("%w: therapist %v offers no slot %d", rpcapi.ErrInvalidParams, ref.Therapist, ref.Slot)
	case slot.Status != fapp.SlotFrei:
		return fapp.PatientReservation{}, fmt.Errorf("%w: slot %v is %v", rpcapi.ErrRefused, ref, slot.Status)
	}
	if start.IsZero() {
		start = nextOccurrence(slot, now)
	}
	if !isOccurrence(slot, start) || start.Before(now) {
		// The therapist refuses it without an answer: the patient would
		// wait for ever.
		return fapp.PatientReservation{}, fmt.Errorf("%w: slot %v has no occurrence at %v still ahead", rpcapi.ErrInvalidParams, ref, start.UTC())
	}
	r, sealed, err := f.patient.NewRequest(randReader, p.Identity, ref, start, opts, now)
	if err != nil {
		return r, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putPatientLocked(&b, r)
	if err := f.write(b); err != nil {
		f.patient.Forget(r.Request.ID)
		return r, err
	}
	f.queue(fappOut{unicast: true, dest: p.Identity.Address(), body: append([]byte{toTherapist}, sealed...), ttl: fapp.DefaultMessageTTL})
	return r, nil
}

// isOccurrence reports whether start is one of the slot's occurrences.
func isOccurrence(s fapp.Slot, start time.Time) bool {
	for k := range s.Occurrences() {
		if s.Occurrence(k).Equal(start) {
			return true
		}
	}
	return false
}

// nextOccurrence returns the slot's first occurrence at or after now (its
// start if none is).
func nextOccurrence(s fapp.Slot, now time.Time) time.Time {
	for k := range s.Occurrences() {
		if t := s.Occurrence(k); !t.Before(now) {
			return t
		}
	}
	return s.Start
}

func findSlot(a *fapp.SlotAnnounce, id uint16) (fapp.Slot, bool) {
	for _, s := range a.Slots {
		if s.ID == id {
			return s, true
		}
	}
	return fapp.Slot{}, false
}

// Therapist decisions.
const (
	decideHold    = "hold"
	decideConfirm = "confirm"
	decideDecline = "decline"
	decideCancel  = "cancel"
)

// respondLocked applies the therapist's decision and queues the signed
// answer for the patient's node.
func (f *fappNode) respondLocked(id fapp.RequestID, action, note string, holdUntil, now time.Time) (fapp.Reservation, error) {
	f.expireLocked(now)
	var m fapp.Message
	var err error
	switch action {
	case decideHold:
		m, err = f.book.Hold(id, holdUntil, note, now)
	case decideConfirm:
		m, err = f.book.Confirm(id, note, now)
	case decideDecline:
		m, err = f.book.Decline(id, note, now)
	case decideCancel:
		m, err = f.book.CancelByTherapist(id, now)
	default:
		return fapp.Reservation{}, fmt.Errorf("%w: action %q: want hold, confirm, decline or cancel", rpcapi.ErrInvalidParams, action)
	}
	if err != nil {
		return fapp.Reservation{}, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	r, _ := f.book.Get(id)
	sealed, err := f.book.Seal(randReader, id, m, now)
	if err != nil {
		return r, err
	}
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putTherapistLocked(&b, r)
	if err := f.write(b); err != nil {
		return r, err
	}
	f.slotStatusLocked(r, now)
	if to, ok := f.replyTo[id]; ok {
		f.queue(fappOut{unicast: true, dest: to, body: append([]byte{toPatient}, sealed...), ttl: fapp.DefaultMessageTTL})
	}
	return r, nil
}

// cancelLocked cancels the patient's reservation and queues the cancel.
func (f *fappNode) cancelLocked(id fapp.RequestID, now time.Time) (fapp.PatientReservation, error) {
	f.expireLocked(now)
	sealed, err := f.patient.Cancel(randReader, id, now)
	if err != nil {
		return fapp.PatientReservation{}, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	r, _ := f.patient.Get(id)
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putPatientLocked(&b, r)
	if err := f.write(b); err != nil {
		return r, err
	}
	f.queue(fappOut{unicast: true, dest: r.Therapist.Address(), body: append([]byte{toTherapist}, sealed...), ttl: fapp.DefaultMessageTTL})
	return r, nil
}
