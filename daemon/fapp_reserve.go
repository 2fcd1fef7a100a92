package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Stored reservations (f/t/, f/r/) are fapp's records
// (Reservation.MarshalBinary, PatientReservation.MarshalBinary, which holds
// the ephemeral identity's private key); a therapist-side record is
// preceded by the 16-byte address of the patient's node, where responses
// go (all zeros when unknown).
func encodeTherapistRes(r fapp.Reservation, replyTo protocol.Address) ([]byte, error) {
	rec, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(replyTo[:], rec...), nil
}

func decodeTherapistRes(v []byte) (fapp.Reservation, protocol.Address, error) {
	var to protocol.Address
	if len(v) < len(to) {
		return fapp.Reservation{}, to, fmt.Errorf("%w: reservation record of %d bytes", store.ErrCorrupt, len(v))
	}
	copy(to[:], v)
	r, err := fapp.ParseReservation(v[len(to):])
	return r, to, err
}

func encodePatientRes(r fapp.PatientReservation) ([]byte, error) { return r.MarshalBinary() }

func decodePatientRes(v []byte) (fapp.PatientReservation, error) {
	return fapp.ParsePatientReservation(v)
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
	if !slices.ContainsFunc(ds, func(d routing.Delivery) bool { return d.Type == protocol.TypeFAPP }) {
		return ds, seqs // the usual batch: nothing to take
	}
	var rest []routing.Delivery
	var restSeqs []uint64
	for i, d := range ds {
		if d.Type != protocol.TypeFAPP {
			rest, restSeqs = append(rest, d), append(restSeqs, seqs[i])
			continue
		}
		f.onDirect(d.From, d.Body, seqs[i])
	}
	return rest, restSeqs
}

// onDirect handles one FAPP unicast message and removes its inbox entry in
// the same write as what it caused. Loop (or start-up) only.
func (f *fappNode) onDirect(from protocol.Address, body []byte, seq uint64) {
	now := f.n.now()
	b := store.FAPPBatch{Put: map[string][]byte{}, Ack: []uint64{seq}}
	f.mu.Lock()
	var events []rpcapi.Event
	switch {
	case len(body) < 2:
		f.drop("reservation", fapp.ErrTruncated)
	case body[0] == toTherapist:
		events = f.onTherapistMsgLocked(&b, from, body[1:], now)
	case body[0] == toPatient:
		events = f.onPatientMsgLocked(&b, body[1:], now)
	default:
		f.drop("reservation", fapp.ErrUnknownVersion)
	}
	f.mu.Unlock()
	if f.write(b) != nil {
		f.mu.Lock()
		f.unstageLocked(b) // a refusal
		f.mu.Unlock()
		return
	}
	f.publishEvents(events)
}

// onTherapistMsgLocked applies a request or a patient's cancel. A request
// may have waited in custody while this node was offline: fapp's Book
// judges its age and stamp by the request's own creation time, bounded by
// the request lifetime, so arrival time is the right clock here.
func (f *fappNode) onTherapistMsgLocked(b *store.FAPPBatch, from protocol.Address, sealed []byte, now time.Time) []rpcapi.Event {
	if f.template == nil {
		f.drop("reservation", fapp.ErrNotFound)
		return nil
	}
	// The books expire lapsed holds inside every call, and only this
	// writes that back (store, announce status, event): run it first.
	f.expireLocked(now)
	m, sender, err := fapp.OpenMessage(f.n.id, sealed, now)
	if err != nil {
		f.drop("reservation", err)
		return nil
	}
	var r fapp.Reservation
	var events []rpcapi.Event
	refused := false
	switch m := m.(type) {
	case *fapp.Request:
		r, err = f.book.Receive(m, sender, now)
		if errors.Is(err, fapp.ErrNotOffered) {
			// Taken a moment ago (or gone), or its place full of requests
			// with as much stamp work: answer ABGELEHNT rather than leave
			// the patient waiting; Refuse checks the request and its
			// stamp as Receive does.
			note := ""
			if errors.Is(err, fapp.ErrLimit) {
				// Tell the patient what gets in now (a request made
				// before the ones a flood made the book forget gets in
				// again at the least stamp, made anew).
				note = fapp.BusyNote(max(f.book.StampToGetIn(m), fapp.DefaultStampBits))
				f.stats.add("requests_busy", 1)
			}
			r, err = f.refuseLocked(b, m, sender, note, from, now)
			refused = true
		}
		if err == nil {
			f.replyTo[r.Request.ID] = from
			f.ackEarlyLocked(b, r.Request.ID)
		}
		events = f.declinePushedOutLocked(b, now)
	case *fapp.Cancel:
		if err = f.book.ApplyCancel(m, sender, now); err == nil {
			r, err = f.book.Get(m.ID)
		} else if f.book.HasEarly(m.ID) {
			f.keepEarlyLocked(b, m.ID)
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
	if !refused {
		// A refused request names a start that is not on offer: the
		// book's status of that start (nobody holds it, so FREI) must not
		// reach the announce, or one anonymous request would turn a
		// VERGEBEN slot FREI again.
		f.slotStatusLocked(b, r, now)
	}
	return append(events, f.therapistEvent(r))
}

// declinePushedOutLocked answers ABGELEHNT, at the next boundary as a
// rival's decline, to the requests a request with more stamp work pushed
// out of a full place or book (Book.TakeDeclined), and stores them in b.
func (f *fappNode) declinePushedOutLocked(b *store.FAPPBatch, now time.Time) []rpcapi.Event {
	resps := f.book.TakeDeclined()
	var events []rpcapi.Event
	for _, resp := range resps {
		r, _ := f.book.Get(resp.ID)
		f.putTherapistLocked(b, r)
		events = append(events, f.therapistEvent(r))
		if to, ok := f.replyTo[resp.ID]; ok {
			if err := f.queueLaterLocked(b, to, resp.ID, resp, now); err != nil {
				f.n.log.Warn("cannot answer a pushed-out request", "err", err)
			}
		}
	}
	f.stats.add("requests_pushed_out", uint64(len(resps)))
	return events
}

// offersLocked is the Book's Offers: whether the own offer has q's slot
// occurrence FREI (Publisher.Offers). Caller holds mu.
func (f *fappNode) offersLocked(slot uint16, start time.Time) error {
	if f.pub == nil {
		return fmt.Errorf("slot %d: no offer: %w", slot, fapp.ErrNotFound)
	}
	return f.pub.Offers(slot, start)
}

// occursLocked is the Book's Occurs: whether start is an occurrence of
// the own slot, as offered now or rolled past (a weekly place is one
// place: Book lets one reservation hold it, whichever occurrence it starts
// at). A group is not one patient's place: its seats are not counted, and
// its reservations stay one per occurrence, as before. Caller holds mu.
func (f *fappNode) occursLocked(slot uint16, start time.Time) bool {
	if f.pub == nil {
		return false
	}
	own := f.pub.Slots()
	i := slices.IndexFunc(own, func(s fapp.Slot) bool { return s.ID == slot })
	return i >= 0 && own[i].Setting != fapp.Gruppe && (offers(own[i], start) || rolledPast(own[i], start))
}

// rolledPast reports whether start is a week of weekly slot s that the
// publisher rolled past (it moves a weekly slot on to its next occurrence
// once one has passed): the weekly series from start reaches s's start.
// Without it a request for the first week, still ANGEFRAGT when that week
// passed, was a place of its own, and the place could be given twice.
func rolledPast(s fapp.Slot, start time.Time) bool {
	if !s.Woechentlich || !start.Before(s.Start) || s.Start.Sub(start) > (fapp.MaxWeeks+1)*7*24*time.Hour {
		return false
	}
	past := s
	past.Start, past.Bis = start, s.Start
	return isOccurrence(past, s.Start)
}

// refuseLocked answers a request for a slot not on offer, or for a full
// place (note: BusyNote), with a signed ABGELEHNT, stored in b (the
// outbox) and queued for the patient's node.
func (f *fappNode) refuseLocked(b *store.FAPPBatch, q *fapp.Request, sender protocol.CompactIdentity, note string, from protocol.Address, now time.Time) (fapp.Reservation, error) {
	r, resp, err := f.book.Refuse(q, sender, note, now)
	if err != nil {
		return r, err
	}
	if err := f.queueLaterLocked(b, from, q.ID, resp, now); err != nil {
		return r, err
	}
	f.stats.add("requests_refused", 1)
	return r, nil
}

func (f *fappNode) onPatientMsgLocked(b *store.FAPPBatch, sealed []byte, now time.Time) []rpcapi.Event {
	f.expireLocked(now)
	f.patMu.Lock()
	r, err := f.patient.Open(sealed, now)
	again, aerr := f.patient.CancelsToResend(randReader, now)
	f.patMu.Unlock()
	if aerr != nil {
		f.n.log.Warn("cannot seal a cancel again", "err", aerr)
	}
	for _, c := range again {
		// The therapist held or confirmed a reservation this patient
		// cancelled: its book never applied the cancel (pushed out
		// before the request came, or lost). It has the request now.
		o := fappOut{unicast: true, dest: c.Therapist.Address(), body: append([]byte{toTherapist}, c.Sealed...), ttl: fapp.DefaultMessageTTL}
		f.deferLocked(f.stageOutLocked(b, o, now), now)
		f.stats.add("cancels_resent", 1)
	}
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
		f.slotStatusLocked(&b, r, now)
		events = append(events, f.therapistEvent(r))
	}
	f.patMu.Lock()
	expired := f.patient.Expire(now)
	f.patMu.Unlock()
	for _, r := range expired {
		f.putPatientLocked(&b, r)
		events = append(events, f.patientEvent(r))
	}
	if f.write(b) == nil {
		f.publishEvents(events)
	}
}

// reserve makes a reservation request for slot ref at start (zero: the
// slot's next start) and queues it for the therapist. Minting the stamp
// takes a while (docs/performance.md), so it runs under the patient book's
// lock only: the node loop, which takes mu for every FAPP delivery, does
// not wait for it. The mint stops when ctx ends or the node stops
// (givenUp): the call fails, and nothing is recorded, stored or sent.
func (f *fappNode) reserve(ctx context.Context, ref fapp.SlotRef, start time.Time, opts fapp.RequestOptions, now time.Time) (fapp.PatientReservation, error) {
	f.mu.Lock()
	therapist, start, err := f.prepareReserveLocked(ref, start, now)
	f.mu.Unlock()
	if err != nil {
		return fapp.PatientReservation{}, err
	}
	q, err := f.mintRequest(ctx, therapist, ref, start, opts, now)
	if err != nil {
		return fapp.PatientReservation{}, err // apiErr maps fapp's sentinels
	}
	f.patMu.Lock()
	r, sealed, err := f.patient.Add(q)
	f.patMu.Unlock()
	if err != nil {
		return r, err // apiErr maps fapp's sentinels
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putPatientLocked(&b, r)
	o := f.stageOutLocked(&b, fappOut{unicast: true, dest: therapist.Address(), body: append([]byte{toTherapist}, sealed...), ttl: fapp.DefaultMessageTTL}, now)
	if err := f.write(b); err != nil {
		f.patMu.Lock()
		f.patient.Forget(r.Request.ID)
		f.patMu.Unlock()
		return r, err
	}
	f.queue(o)
	return r, nil
}

// mintRequest makes the request, its stamp minted (seconds, minutes at
// stamp_bits 28), without patMu, which mu's holders take: only the record
// is made under it. It gives the mint up, and fails with givenUp's
// reason, when ctx ends or the node stops: the stamp's work is checked
// every fapp.StampCheckEvery nonces.
func (f *fappNode) mintRequest(ctx context.Context, therapist *protocol.PublicIdentity, ref fapp.SlotRef, start time.Time, opts fapp.RequestOptions, now time.Time) (*fapp.PreparedRequest, error) {
	var why error
	stop := func(tried uint64) bool {
		if f.mintCheck != nil {
			f.mintCheck(ctx, tried)
		}
		why = f.givenUp(ctx)
		return why != nil
	}
	q, err := f.patient.Prepare(randReader, therapist, ref, start, opts, now, stop)
	if why == nil && err == nil {
		why = f.givenUp(ctx) // ended as the stamp was found: nobody to tell
	}
	if why != nil {
		return nil, why
	}
	return q, err
}

// givenUp says why a reservation being made is given up: its call ended
// (the client went away, its deadline passed, the API server is shutting
// down) or the node is stopping. Nil when neither.
func (f *fappNode) givenUp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reservation given up while minting its stamp: %w", err)
	}
	if f.n.ctx.Err() != nil {
		return fmt.Errorf("%w: the node is stopping; reservation given up while minting its stamp", rpcapi.ErrUnavailable)
	}
	return nil
}

// prepareReserveLocked finds the therapist's identity and the occurrence
// to ask for.
func (f *fappNode) prepareReserveLocked(ref fapp.SlotRef, start, now time.Time) (*protocol.PublicIdentity, time.Time, error) {
	a, p := f.idx.Get(ref.Therapist), f.idx.Profile(ref.Therapist)
	if e := f.remote[ref.Therapist]; e != nil && (a == nil || e.a.Sequence > a.Sequence) {
		a, p = e.a, e.p
	}
	if a == nil {
		return nil, start, fmt.Errorf("%w: no announce of therapist %v is known (query first)", rpcapi.ErrInvalidParams, ref.Therapist)
	}
	if p == nil || mustRef(p) != a.Profile {
		if f.following(a.Region()) {
			f.askProfileLocked(a.Region(), a.Therapist, a.Profile, now)
		}
		return nil, start, fmt.Errorf("%w: the therapist's profile (with the key to seal to) has not arrived yet; try again shortly", rpcapi.ErrRefused)
	}
	slot, ok := findSlot(a, ref.Slot)
	switch {
	case !ok:
		return nil, start, fmt.Errorf("%w: therapist %v offers no slot %d", rpcapi.ErrInvalidParams, ref.Therapist, ref.Slot)
	case slot.Status != fapp.SlotFrei:
		return nil, start, fmt.Errorf("%w: slot %v is %v", rpcapi.ErrRefused, ref, slot.Status)
	}
	if start.IsZero() {
		start = nextOccurrence(slot, now)
	}
	if !isOccurrence(slot, start) || start.Before(now) {
		// The therapist refuses it without an answer: the patient would
		// wait for ever.
		return nil, start, fmt.Errorf("%w: slot %v has no occurrence at %v still ahead", rpcapi.ErrInvalidParams, ref, start.UTC())
	}
	return p.Identity, start, nil
}

// isOccurrence reports whether start is one of the slot's occurrences.
// The k-th is k weeks after the start give or take the clock change, so
// only the nearest k can be it: one look, not one per week (the Book asks
// this for every reservation of a place in every decision, BookConfig.
// Occurs).
func isOccurrence(s fapp.Slot, start time.Time) bool {
	const week = 7 * 24 * time.Hour
	d := start.Sub(s.Start)
	if d < -week/2 {
		return false
	}
	k := int((d + week/2) / week)
	return k < s.Occurrences() && s.Occurrence(k).Equal(start)
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
		return fapp.Reservation{}, err // apiErr maps fapp's sentinels
	}
	r, _ := f.book.Get(id)
	sealed, err := f.book.Seal(randReader, id, m, now)
	if err != nil {
		return r, err
	}
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putTherapistLocked(&b, r)
	to, answer := f.replyTo[id]
	var o fappOut
	if answer {
		// Stored with the decision: a crash before the engine has it
		// in custody would otherwise lose it (fapp_outbox.go).
		o = f.stageOutLocked(&b, fappOut{unicast: true, dest: to, body: append([]byte{toPatient}, sealed...), ttl: fapp.DefaultMessageTTL}, now)
	}
	f.slotStatusLocked(&b, r, now)
	var rivals []rpcapi.Event
	if action == decideHold || action == decideConfirm {
		rivals = f.declineRivalsLocked(&b, id, now)
	}
	if err := f.write(b); err != nil {
		f.unstageLocked(b) // the rivals' declines
		return r, err
	}
	if answer {
		f.queue(o)
	}
	f.publishEvents(rivals)
	return r, nil
}

// declineRivalsLocked answers ABGELEHNT to the other requests for the
// place id now holds or has (Book.DeclineRivals): they can no longer be
// held, and their patients would otherwise wait a week for nothing. The
// declines go into b, the batch of the decision (in a write of their own,
// a crash before it left them ANGEFRAGT); it returns their events, to
// publish once b is written.
func (f *fappNode) declineRivalsLocked(b *store.FAPPBatch, id fapp.RequestID, now time.Time) []rpcapi.Event {
	resps, err := f.book.DeclineRivals(id, "", now)
	if err != nil {
		f.n.log.Warn("cannot decline the other requests for a taken slot", "err", err)
	}
	var events []rpcapi.Event
	for _, resp := range resps {
		r, _ := f.book.Get(resp.ID)
		f.putTherapistLocked(b, r)
		events = append(events, f.therapistEvent(r))
		to, ok := f.replyTo[resp.ID]
		if !ok {
			continue
		}
		if err := f.queueLaterLocked(b, to, resp.ID, resp, now); err != nil {
			f.n.log.Warn("cannot answer a declined request", "err", err)
		}
	}
	f.stats.add("rivals_declined", uint64(len(resps)))
	return events
}

// cancelLocked cancels the patient's reservation and queues the cancel.
func (f *fappNode) cancelLocked(id fapp.RequestID, now time.Time) (fapp.PatientReservation, error) {
	f.expireLocked(now)
	f.patMu.Lock()
	sealed, err := f.patient.Cancel(randReader, id, now)
	r, _ := f.patient.Get(id)
	f.patMu.Unlock()
	if err != nil {
		return fapp.PatientReservation{}, err // apiErr maps fapp's sentinels
	}
	b := store.FAPPBatch{Put: map[string][]byte{}}
	f.putPatientLocked(&b, r)
	o := f.stageOutLocked(&b, fappOut{unicast: true, dest: r.Therapist.Address(), body: append([]byte{toTherapist}, sealed...), ttl: fapp.DefaultMessageTTL}, now)
	if err := f.write(b); err != nil {
		return r, err
	}
	f.queue(o)
	return r, nil
}
