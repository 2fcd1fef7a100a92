package fapp

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// PatientReservation is one reservation as the patient's PatientBook holds it.
type PatientReservation struct {
	Request Request
	// Identity is the ephemeral identity made for this reservation only.
	// It is secret: whoever holds it can cancel the reservation.
	Identity *protocol.Identity
	// Therapist is the therapist's public identity (from the profile).
	Therapist *protocol.PublicIdentity
	State     ReservationState
	HoldUntil time.Time
	Nachricht string // the therapist's last note
	// Confirmation is the therapist's signed BESTAETIGT response: the
	// patient's proof of the appointment.
	Confirmation *Response
	Updated      time.Time
}

// PatientBookConfig configures a PatientBook. Zero fields take the defaults.
type PatientBookConfig struct {
	MaxReservations int
	// StampBits is the difficulty to mint (the therapists' verifiers'
	// MinBits; default DefaultStampBits); StampBucket their bucket length.
	StampBits   uint8
	StampBucket time.Duration
	// MaxStampTries bounds the minting work (0: no bound).
	MaxStampTries uint64
	// RequestTTL is the therapists' request lifetime (default
	// DefaultRequestTTL); Sweep keeps finished reservations this long.
	RequestTTL time.Duration
}

// PatientBook is the patient's side of reservations: it makes requests
// (with a fresh ephemeral identity and a stamp each), applies the
// therapist's signed responses and cancels, and makes the patient's
// cancels. It is not safe for concurrent use.
type PatientBook struct {
	cfg    PatientBookConfig
	res    map[RequestID]*PatientReservation
	byAddr map[protocol.Address]RequestID
	// unheard holds the reservations the patient cancelled for which the
	// therapist then signed a hold or confirmation (its book has not
	// applied the cancel: it overtook the request and was pushed out, or
	// was lost), with that answer's time; CancelsToResend seals the
	// cancel again. resent is the latest answer time a cancel was resent
	// for, so a replayed answer does not make another.
	unheard map[RequestID]time.Time
	resent  map[RequestID]time.Time
}

// NewPatientBook returns an empty book.
func NewPatientBook(cfg PatientBookConfig) *PatientBook {
	cfg.MaxReservations = cmp.Or(cfg.MaxReservations, DefaultMaxReservations)
	cfg.StampBits = cmp.Or(cfg.StampBits, DefaultStampBits)
	cfg.StampBucket = cmp.Or(cfg.StampBucket, DefaultStampBucket)
	cfg.RequestTTL = cmp.Or(cfg.RequestTTL, DefaultRequestTTL)
	return &PatientBook{cfg: cfg, res: map[RequestID]*PatientReservation{}, byAddr: map[protocol.Address]RequestID{},
		unheard: map[RequestID]time.Time{}, resent: map[RequestID]time.Time{}}
}

// RequestOptions are what the patient chooses to give.
type RequestOptions struct {
	Kontakt string
	PTV11   string
	// StampBits, when above the book's StampBits, is the stamp work to
	// spend instead (at most MaxRequestStampBits): a therapist's book whose
	// place is full of requests lets in one with more work than the
	// weakest (each bit doubles the minting time).
	StampBits uint8
}

// MaxRequestStampBits bounds RequestOptions.StampBits: 28 bits is 256
// times the default 20, minutes of a phone's CPU.
const MaxRequestStampBits = 28

// NewRequest makes a reservation request for slot (of therapist, whose
// profile identity the request is sealed to) at the occurrence start: a
// fresh ephemeral identity and request ID from rand, a stamp, and the
// sealed message the daemon sends to therapist.Address(). The reservation is
// recorded as ANGEFRAGT. It is Prepare and Add.
func (p *PatientBook) NewRequest(rand io.Reader, therapist *protocol.PublicIdentity, slot SlotRef, start time.Time, opts RequestOptions, now time.Time) (PatientReservation, []byte, error) {
	if len(p.res) >= p.cfg.MaxReservations {
		return PatientReservation{}, nil, fmt.Errorf("request: %d reservations: %w", len(p.res), ErrLimit)
	}
	q, err := p.Prepare(rand, therapist, slot, start, opts, now, nil)
	if err != nil {
		return PatientReservation{}, nil, err
	}
	return p.Add(q)
}

// PreparedRequest is a request made and sealed (Prepare), not yet in the
// book (Add).
type PreparedRequest struct {
	r      PatientReservation
	sealed []byte
}

// Prepare makes the request NewRequest records, without recording it. It
// reads only the book's configuration, never its reservations, so a
// caller that keeps the book under a lock can run it without: the stamp
// takes seconds at the default bits, minutes of a phone's CPU at
// MaxRequestStampBits, and a lock held that long stalls everything that
// applies the therapists' answers. stop (nil: never) is the stamp's stop
// check (MintStampUntil): when it gives up, Prepare fails with ErrStopped
// and nothing is made, so the caller has nothing to undo.
func (p *PatientBook) Prepare(rand io.Reader, therapist *protocol.PublicIdentity, slot SlotRef, start time.Time, opts RequestOptions, now time.Time, stop func(tried uint64) bool) (*PreparedRequest, error) {
	if TherapistKeyOf(therapist.Compact()) != slot.Therapist {
		return nil, fmt.Errorf("request: identity is not the slot's therapist: %w", ErrMismatch)
	}
	if opts.StampBits > MaxRequestStampBits {
		return nil, fmt.Errorf("request: stamp of %d bits, at most %d: %w", opts.StampBits, MaxRequestStampBits, ErrMalformed)
	}
	eph, err := protocol.NewIdentity(rand)
	if err != nil {
		return nil, err
	}
	id, err := NewRequestID(rand)
	if err != nil {
		return nil, err
	}
	q := Request{ID: id, Slot: slot, Start: start, Patient: eph.Public(), Created: now.Truncate(time.Second),
		Kontakt: opts.Kontakt, PTV11: opts.PTV11}
	bits := max(p.cfg.StampBits, opts.StampBits)
	if q.Stamp, err = MintStampUntil(slot, id, bits, p.cfg.StampBucket, now, p.cfg.MaxStampTries, stop); err != nil {
		return nil, err
	}
	raw, err := q.MarshalBinary()
	if err != nil {
		return nil, err
	}
	sealed, err := SealMessage(rand, eph, therapist, raw, now, DefaultMessageTTL)
	if err != nil {
		return nil, err
	}
	return &PreparedRequest{r: PatientReservation{Request: q, Identity: eph, Therapist: therapist, State: Angefragt, Updated: now}, sealed: sealed}, nil
}

// Add records a prepared request as ANGEFRAGT and returns it and the
// sealed message to send to its therapist's address. It refuses a full
// book (ErrLimit) and a request added before (ErrReplay).
func (p *PatientBook) Add(q *PreparedRequest) (PatientReservation, []byte, error) {
	id := q.r.Request.ID
	switch {
	case len(p.res) >= p.cfg.MaxReservations:
		return PatientReservation{}, nil, fmt.Errorf("request: %d reservations: %w", len(p.res), ErrLimit)
	case p.res[id] != nil:
		return PatientReservation{}, nil, fmt.Errorf("request %v: %w", id, ErrReplay)
	}
	r := q.r
	p.res[id], p.byAddr[r.Identity.Address()] = &r, id
	return r, q.sealed, nil
}

// Open opens a sealed message from a therapist addressed to one of the
// book's ephemeral identities and applies it (ApplyResponse or
// ApplyCancel). It returns the reservation as it now stands.
func (p *PatientBook) Open(sealed []byte, now time.Time) (PatientReservation, error) {
	e, err := protocol.ParseEnvelope(sealed)
	if err != nil {
		return PatientReservation{}, fmt.Errorf("patient open: %w: %w", ErrMalformed, err)
	}
	id, ok := p.byAddr[e.Dest]
	if !ok {
		return PatientReservation{}, fmt.Errorf("patient open: no reservation for %v: %w", e.Dest, ErrNotFound)
	}
	r := p.res[id]
	m, sender, err := OpenMessage(r.Identity, sealed, now)
	if err != nil {
		return PatientReservation{}, err
	}
	if sender != r.Therapist.Compact() {
		return PatientReservation{}, fmt.Errorf("patient open: sealed by %v, not the therapist: %w", sender.Address(), ErrMismatch)
	}
	switch m := m.(type) {
	case *Response:
		err = p.ApplyResponse(m, now)
	case *Cancel:
		err = p.ApplyCancel(m, now)
	default:
		err = fmt.Errorf("patient open: a patient receives no %T: %w", m, ErrMalformed)
	}
	if err != nil {
		return PatientReservation{}, err
	}
	return *p.res[id], nil
}

// ApplyResponse applies a therapist's response after checking that it
// answers this reservation and carries the therapist's signature.
func (p *PatientBook) ApplyResponse(m *Response, now time.Time) error {
	p.Expire(now)
	r := p.res[m.ID]
	if r == nil {
		return fmt.Errorf("response %v: %w", m.ID, ErrNotFound)
	}
	if m.Slot != r.Request.Slot {
		return fmt.Errorf("response %v: for slot %v, asked %v: %w", m.ID, m.Slot, r.Request.Slot, ErrMismatch)
	}
	if err := m.Verify(); err != nil {
		return err
	}
	ev, ok := eventOfResponse(m.State)
	if !ok {
		return fmt.Errorf("response %v: state %v: %w", m.ID, m.State, ErrMalformed)
	}
	if ev == EventHold && !now.Before(m.HoldUntil) {
		return fmt.Errorf("response %v: hold until %v already over: %w", m.ID, m.HoldUntil, ErrExpired)
	}
	to, err := patientTransition(r, ev, m.Created)
	if err != nil {
		if r.State == StorniertPatient && (ev == EventHold || ev == EventConfirm) && m.Created.After(p.resent[m.ID]) {
			p.unheard[m.ID] = m.Created
		}
		return err
	}
	r.State, r.HoldUntil, r.Nachricht, r.Updated = to, m.HoldUntil, m.Nachricht, now
	if to == Bestaetigt {
		r.Confirmation = m
	}
	return nil
}

// patientTransition is Transition for the therapist's messages at the
// patient, which the mesh may deliver out of order or late (custody, two
// routes, a phone that was off). Two moves beyond the table keep the
// patient's book where the therapist's is:
//
//   - a therapist's cancel ends the reservation from ANGEFRAGT or
//     ABGELAUFEN too: the therapist cancels only a hold or a confirmation,
//     so the one it cancels is still on the way (or lost), and whatever
//     arrives after the cancel is refused;
//   - a confirmation signed before a lapsed hold's end (a patient's
//     ABGELAUFEN is always a lapsed hold, dated at the hold's end: Expire)
//     was made while the hold stood, and the therapist's book has it
//     BESTAETIGT: it confirms.
func patientTransition(r *PatientReservation, ev Event, created time.Time) (ReservationState, error) {
	to, err := Transition(r.State, ev)
	if err == nil {
		return to, nil
	}
	switch {
	case ev == EventCancelTherapist && (r.State == Angefragt || r.State == Abgelaufen):
		return StorniertTherapeut, nil
	case ev == EventConfirm && r.State == Abgelaufen && created.Before(r.Updated):
		return Bestaetigt, nil
	}
	return r.State, err
}

// ApplyCancel applies a therapist's signed cancel.
func (p *PatientBook) ApplyCancel(c *Cancel, now time.Time) error {
	p.Expire(now)
	r := p.res[c.ID]
	switch {
	case r == nil:
		return fmt.Errorf("cancel %v: %w", c.ID, ErrNotFound)
	case c.By != StorniertTherapeut || c.Slot != r.Request.Slot:
		return fmt.Errorf("cancel %v: not the therapist's cancel of this reservation: %w", c.ID, ErrMismatch)
	}
	if err := c.Verify(protocol.CompactIdentity{}); err != nil {
		return err
	}
	to, err := patientTransition(r, EventCancelTherapist, c.Created)
	if err != nil {
		return err
	}
	r.State, r.HoldUntil, r.Updated = to, time.Time{}, now
	return nil
}

// Cancel cancels the patient's reservation id (STORNIERT_PATIENT) and
// returns the signed cancel sealed to the therapist.
func (p *PatientBook) Cancel(rand io.Reader, id RequestID, now time.Time) ([]byte, error) {
	p.Expire(now)
	r := p.res[id]
	if r == nil {
		return nil, fmt.Errorf("cancel %v: %w", id, ErrNotFound)
	}
	to, err := Transition(r.State, EventCancelPatient)
	if err != nil {
		return nil, err
	}
	sealed, err := p.sealCancel(rand, r, now)
	if err != nil {
		return nil, err
	}
	r.State, r.HoldUntil, r.Updated = to, time.Time{}, now
	return sealed, nil
}

// ResentCancel is a patient's cancel sealed again for its therapist
// (CancelsToResend).
type ResentCancel struct {
	ID        RequestID
	Therapist *protocol.PublicIdentity
	Sealed    []byte
}

// CancelsToResend returns, once per answer, the patient's cancels sealed
// again for the reservations whose therapist signed a hold or confirmation
// after the patient cancelled (Open refused it with ErrTransition): the
// therapist's book did not apply the cancel, because it overtook its
// request and a flood of cancels pushed it out (they need no stamp), or
// it was lost. The request is there now, so the cancel sent again applies.
// A replay of the same answer makes none.
func (p *PatientBook) CancelsToResend(rand io.Reader, now time.Time) ([]ResentCancel, error) {
	ids := slices.Collect(maps.Keys(p.unheard))
	slices.SortFunc(ids, func(a, b RequestID) int { return slices.Compare(a[:], b[:]) })
	var out []ResentCancel
	for _, id := range ids {
		at := p.unheard[id]
		delete(p.unheard, id)
		r := p.res[id]
		if r == nil || r.State != StorniertPatient {
			continue
		}
		sealed, err := p.sealCancel(rand, r, now)
		if err != nil {
			return out, err
		}
		p.resent[id] = at
		out = append(out, ResentCancel{ID: id, Therapist: r.Therapist, Sealed: sealed})
	}
	return out, nil
}

// sealCancel signs the patient's cancel of r and seals it to the therapist.
func (p *PatientBook) sealCancel(rand io.Reader, r *PatientReservation, now time.Time) ([]byte, error) {
	c := &Cancel{ID: r.Request.ID, Slot: r.Request.Slot, By: StorniertPatient, Created: now.Truncate(time.Second)}
	if err := c.Sign(r.Identity); err != nil {
		return nil, err
	}
	raw, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return SealMessage(rand, r.Identity, r.Therapist, raw, now, DefaultMessageTTL)
}

// Expire moves holds past HoldUntil to ABGELAUFEN, dated at the hold's end
// (a confirmation signed before it may still arrive: patientTransition),
// and returns the reservations that changed. (An unanswered request stays
// ANGEFRAGT: only the therapist knows when it lapsed; the patient may
// cancel it.)
func (p *PatientBook) Expire(now time.Time) []PatientReservation {
	var changed []PatientReservation
	for _, r := range p.res {
		if r.State == Gehalten && !now.Before(r.HoldUntil) {
			r.State, r.HoldUntil, r.Updated = Abgelaufen, time.Time{}, r.HoldUntil
			changed = append(changed, *r)
		}
	}
	sortPatient(changed)
	return changed
}

// Sweep forgets, to bound memory and storage, the reservations that are
// finished: terminal ones RequestTTL after their last change (the patient
// has had time to see the outcome), confirmed ones whose appointment
// started more than RequestTTL ago (as the therapist's Book forgets them),
// and requests still ANGEFRAGT when no answer can come any more (the
// therapist lets them lapse after RequestTTL; an answer lives at most
// DefaultMessageTTL). It returns their IDs, for the daemon's store.
func (p *PatientBook) Sweep(now time.Time) []RequestID {
	var gone []RequestID
	for id, r := range p.res {
		if (r.State.Terminal() && now.Sub(r.Updated) > p.cfg.RequestTTL) ||
			(r.State == Bestaetigt && now.Sub(r.Request.Start) > p.cfg.RequestTTL) ||
			(r.State == Angefragt && now.Sub(r.Request.Created) > p.cfg.RequestTTL+DefaultMessageTTL) {
			p.Forget(id)
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, func(a, b RequestID) int { return slices.Compare(a[:], b[:]) })
	return gone
}

// Get returns a copy of reservation id.
func (p *PatientBook) Get(id RequestID) (PatientReservation, error) {
	if r := p.res[id]; r != nil {
		return *r, nil
	}
	return PatientReservation{}, fmt.Errorf("reservation %v: %w", id, ErrNotFound)
}

// List returns copies of every reservation, oldest first.
func (p *PatientBook) List() []PatientReservation {
	out := make([]PatientReservation, 0, len(p.res))
	for _, r := range p.res {
		out = append(out, *r)
	}
	sortPatient(out)
	return out
}

// Forget drops reservation id (the patient deletes it; nothing is sent).
func (p *PatientBook) Forget(id RequestID) {
	if r := p.res[id]; r != nil {
		delete(p.byAddr, r.Identity.Address())
		delete(p.res, id)
	}
	delete(p.unheard, id)
	delete(p.resent, id)
}

// Restore puts back a reservation the daemon persisted.
func (p *PatientBook) Restore(r PatientReservation) error {
	switch {
	case !r.State.Valid() || r.Identity == nil || r.Therapist == nil:
		return fmt.Errorf("restore reservation %v: %w", r.Request.ID, ErrMalformed)
	case p.res[r.Request.ID] != nil:
		return fmt.Errorf("restore reservation %v: %w", r.Request.ID, ErrReplay)
	case len(p.res) >= p.cfg.MaxReservations:
		return fmt.Errorf("restore reservation %v: %w", r.Request.ID, ErrLimit)
	}
	p.res[r.Request.ID], p.byAddr[r.Identity.Address()] = &r, r.Request.ID
	return nil
}

func sortPatient(rs []PatientReservation) {
	slices.SortFunc(rs, func(a, b PatientReservation) int {
		return cmp.Or(a.Request.Created.Compare(b.Request.Created), slices.Compare(a.Request.ID[:], b.Request.ID[:]))
	})
}
