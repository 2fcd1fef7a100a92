package fapp

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"meshd.dev/meshd/protocol"
)

// Book defaults.
const (
	// DefaultMaxReservations bounds the live reservations (ANGEFRAGT,
	// GEHALTEN, BESTAETIGT) a Book holds, and apart from them the finished
	// ones it remembers (those of the oldest requests go first, and a
	// request made no later than one forgotten is refused: ForgotUntil).
	DefaultMaxReservations = 10_000
	// DefaultMaxPerPlace bounds the requests waiting (ANGEFRAGT) for one
	// place; the therapist gives it to one of them.
	DefaultMaxPerPlace = 32
	// DefaultRequestTTL is how long an unanswered request waits (it may sit
	// in custody while the therapist is offline) before it lapses.
	DefaultRequestTTL = 7 * 24 * time.Hour
	// DefaultMaxHold bounds how long a therapist may hold a slot.
	DefaultMaxHold = 7 * 24 * time.Hour
	// DefaultMessageTTL is the lifetime of a sealed reservation message.
	DefaultMessageTTL = 7 * 24 * time.Hour
	// MaxEarlyCancels bounds the patients' cancels a Book keeps for
	// requests that have not arrived yet (the oldest goes first).
	MaxEarlyCancels = 1024
)

// Reservation is one reservation as the therapist's Book holds it.
type Reservation struct {
	Request   Request
	State     ReservationState
	HoldUntil time.Time // while GEHALTEN
	Received  time.Time
	Updated   time.Time
}

// active reports whether r occupies its slot occurrence.
func (r *Reservation) active() bool { return r.State == Gehalten || r.State == Bestaetigt }

// BookConfig configures a therapist's Book. Zero fields take the defaults.
type BookConfig struct {
	// Identity is the therapist's identity (its key is in the announces).
	Identity *protocol.Identity
	// Stamps verifies request stamps; nil makes a verifier with defaults.
	Stamps          *StampVerifier
	MaxReservations int
	// MaxPerPlace bounds the requests waiting for one place. A request for
	// a place (or a book) that is full gets in only with more stamp work
	// than the weakest waiting one, which it pushes out (declined).
	MaxPerPlace int
	RequestTTL  time.Duration
	MaxHold     time.Duration
	ClockSkew   time.Duration
	// Offers, when set, is asked whether a requested slot occurrence is on
	// offer (Publisher.Offers); a request it refuses is refused.
	Offers func(slot uint16, start time.Time) error
	// Occurs, when set, reports whether start is an occurrence of the slot
	// as offered now, or a week of it already passed (the publisher rolls a
	// weekly slot on; a request for a passed week is still for the place).
	// Two reservations of a slot whose starts both occur
	// are for the same place (a weekly place is one place, taken from the
	// occurrence asked for on): only one may hold or have it. Without it,
	// or for a start that no longer occurs, only the same start is the
	// same place.
	Occurs func(slot uint16, start time.Time) bool
}

// Book is the therapist's side of reservations: it accepts requests
// (checking sender, freshness, replay and stamp), applies the therapist's
// decisions and the patients' cancels through Transition, and produces the
// signed responses. It is not safe for concurrent use.
type Book struct {
	cfg BookConfig
	key TherapistKey
	res map[RequestID]*Reservation
	// early holds patients' cancels that overtook their requests: the
	// request's ID, the key that sealed and signed the cancel, and when it
	// arrived (ApplyCancel, Receive).
	early      map[RequestID]earlyCancel
	earlyOrder []RequestID
	// declined holds the signed declines of requests a request with more
	// stamp work pushed out (TakeDeclined); forgot the finished
	// reservations forgotten for room (Sweep returns them).
	declined []*Response
	forgot   []RequestID
	// forgotUntil is the creation time of the newest request forgotten
	// for room (ForgotUntil).
	forgotUntil time.Time
	// restoredLive counts the live reservations while Restore is called
	// again and again (counting them each time made a restart of a full
	// book quadratic: BenchmarkBookRestoreFull); -1: not known. Every
	// other call changes states only after Expire or Sweep, which forget it.
	restoredLive int
}

type earlyCancel struct {
	patient protocol.CompactIdentity
	at      time.Time
}

// NewBook returns an empty book for cfg.Identity.
func NewBook(cfg BookConfig) (*Book, error) {
	if cfg.Identity == nil {
		return nil, fmt.Errorf("book: no identity: %w", ErrMalformed)
	}
	cfg.MaxReservations = cmp.Or(cfg.MaxReservations, DefaultMaxReservations)
	cfg.MaxPerPlace = cmp.Or(cfg.MaxPerPlace, DefaultMaxPerPlace)
	cfg.RequestTTL = cmp.Or(cfg.RequestTTL, DefaultRequestTTL)
	if cfg.Stamps == nil {
		cfg.Stamps = NewStampVerifier(StampConfig{MaxAge: cfg.RequestTTL})
	}
	cfg.MaxHold = cmp.Or(cfg.MaxHold, DefaultMaxHold)
	cfg.ClockSkew = cmp.Or(cfg.ClockSkew, DefaultClockSkew)
	return &Book{cfg: cfg, key: TherapistKeyOf(cfg.Identity.Compact()), res: map[RequestID]*Reservation{},
		early: map[RequestID]earlyCancel{}, restoredLive: -1}, nil
}

// Open opens a sealed reservation message addressed to the therapist and
// applies it: a request is received (Receive), a patient's cancel applied
// (ApplyCancel). It returns the reservation as it now stands.
func (b *Book) Open(sealed []byte, now time.Time) (Reservation, error) {
	m, sender, err := OpenMessage(b.cfg.Identity, sealed, now)
	if err != nil {
		return Reservation{}, err
	}
	switch m := m.(type) {
	case *Request:
		return b.Receive(m, sender, now)
	case *Cancel:
		if err := b.ApplyCancel(m, sender, now); err != nil {
			return Reservation{}, err
		}
		return b.Get(m.ID)
	}
	return Reservation{}, fmt.Errorf("book: a therapist receives no %T: %w", m, ErrMalformed)
}

// Receive records a request in state ANGEFRAGT. sender is who sealed it
// (OpenMessage): it must be the request's own ephemeral key, so nobody can
// file a request in another patient's name. Refused: a request for another
// therapist (ErrMismatch), one created more than the clock skew ahead
// (ErrFromFuture) or older than RequestTTL (ErrExpired), a request ID seen
// before (ErrReplay), a request made no later than one whose finished
// reservation the book forgot for room (ForgotUntil: ErrReplay,
// ErrNotOffered and ErrLimit, for it may be an honest one that waited in
// custody: answer it with Refuse, which does not ask), a slot not on offer (ErrNotOffered and ErrNotFound,
// with Offers: answer it with Refuse), a bad stamp (ErrStamp/ErrReplay), a
// request for a full place or book with no more stamp work than the
// weakest waiting one (ErrNotOffered and ErrLimit: answer it with Refuse,
// so the patient can ask again with more work). A request with more work
// pushes the weakest out: it is declined, its signed response waits in
// TakeDeclined.
func (b *Book) Receive(q *Request, sender protocol.CompactIdentity, now time.Time) (Reservation, error) {
	if err := b.admit(q, sender, now); err != nil {
		return Reservation{}, err
	}
	if !q.Created.After(b.forgotUntil) {
		// It may be one the book forgot for room (trimFinished), or an
		// honest one that waited in custody while a flood came: Refuse
		// answers it once, and its patient asks again.
		return Reservation{}, fmt.Errorf("request %v: created %v, requests made until %v may be forgotten: %w: %w: %w",
			q.ID, q.Created, b.forgotUntil, ErrReplay, ErrNotOffered, ErrLimit)
	}
	if b.cfg.Offers != nil {
		if err := b.cfg.Offers(q.Slot.Slot, q.Start); err != nil {
			return Reservation{}, fmt.Errorf("request %v: %w: %w", q.ID, ErrNotOffered, err)
		}
	}
	e, cancelled := b.early[q.ID]
	cancelled = cancelled && e.patient == sender
	var weakest *Reservation
	var need uint8
	if !cancelled {
		// One that arrives cancelled takes no room.
		var err error
		if weakest, need, err = b.room(q); err != nil {
			return Reservation{}, err
		}
	}
	if err := b.cfg.Stamps.Verify(q.Stamp, q.Slot, q.ID, q.Created, now); err != nil {
		return Reservation{}, fmt.Errorf("request %v: %w", q.ID, err)
	}
	if weakest != nil {
		resp, err := b.decide(weakest.Request.ID, EventDecline, time.Time{}, BusyNote(need), now)
		if err != nil {
			return Reservation{}, err
		}
		b.declined = append(b.declined, resp)
	}
	r := &Reservation{Request: *q, State: Angefragt, Received: now, Updated: now}
	if cancelled {
		// The patient's cancel overtook this request: it arrives
		// cancelled, so the therapist cannot hold or confirm it.
		r.State = StorniertPatient
	}
	b.res[q.ID] = r
	return *r, nil
}

// Refuse answers a request Receive refused because its slot is not on
// offer (taken a moment ago, withdrawn, or no such occurrence) or its
// place is full (note: BusyNote): without an answer the patient would
// wait until the request lapses. It checks the
// request as Receive does, stamp included (a forged, replayed or cheap
// request gets no answer, and nobody makes the therapist sign for free),
// records it as ABGELEHNT (so a replay is refused and Seal finds it) and
// returns the signed response to seal to the patient.
func (b *Book) Refuse(q *Request, sender protocol.CompactIdentity, note string, now time.Time) (Reservation, *Response, error) {
	if err := b.admit(q, sender, now); err != nil {
		return Reservation{}, nil, err
	}
	if err := b.cfg.Stamps.Verify(q.Stamp, q.Slot, q.ID, q.Created, now); err != nil {
		return Reservation{}, nil, fmt.Errorf("request %v: %w", q.ID, err)
	}
	resp := &Response{ID: q.ID, Slot: q.Slot, State: Abgelehnt, Created: now.Truncate(time.Second), Nachricht: note}
	if err := resp.Sign(b.cfg.Identity); err != nil {
		return Reservation{}, nil, err
	}
	r := &Reservation{Request: *q, State: Abgelehnt, Received: now, Updated: now}
	b.res[q.ID] = r
	return *r, resp, nil
}

// room finds room for q, which has not been verified yet (its stamp's
// claimed bits are checked before anything is pushed out): nil when its
// place and the book have room, else the weakest waiting request of its
// place (or, when only the book is full, of the book) if q's stamp claims
// more work, with the bits that get in once q took its room (for the
// pushed-out patient's BusyNote). Without that it refuses q with
// ErrNotOffered and ErrLimit.
func (b *Book) room(q *Request) (*Reservation, uint8, error) {
	var place, waiting []*Reservation
	live := 0
	for _, o := range b.res {
		if o.State.Terminal() {
			continue
		}
		live++
		if o.State == Angefragt {
			waiting = append(waiting, o)
			if b.samePlace(o, q.Slot.Slot, q.Start) {
				place = append(place, o)
			}
		}
	}
	cands := place
	switch {
	case len(place) >= b.cfg.MaxPerPlace:
	case live >= b.cfg.MaxReservations:
		cands = waiting
	default:
		return nil, 0, nil
	}
	w := weakest(cands)
	if w == nil || q.Stamp.Bits <= w.Request.Stamp.Bits {
		return nil, 0, fmt.Errorf("request %v: %d waiting for its place, %d live: a stamp of more than %d bits gets in: %w: %w",
			q.ID, len(place), live, minBits(w), ErrNotOffered, ErrLimit)
	}
	need := q.Stamp.Bits
	for _, c := range cands {
		if c != w {
			need = min(need, c.Request.Stamp.Bits)
		}
	}
	return w, min(need+1, MaxStampBits), nil
}

// StampToGetIn returns the stamp bits a request like q needs to get into
// its place (and the book) now: 0 when there is room, else one more than
// the weakest waiting request, MaxStampBits when no waiting request can
// be pushed out (the book is full of holds and confirmations).
func (b *Book) StampToGetIn(q *Request) uint8 {
	w, _, err := b.room(&Request{ID: q.ID, Slot: q.Slot, Start: q.Start, Stamp: Stamp{Bits: MaxStampBits}})
	switch {
	case err != nil:
		return MaxStampBits
	case w == nil:
		return 0
	}
	return w.Request.Stamp.Bits + 1
}

// busyNotePrefix starts the note of a refusal for a full place
// (BusyNote).
const busyNotePrefix = "ausgelastet: stamp_bits="

// BusyNote is the note a therapist's node signs into the refusal of a
// request for a full place: the stamp bits that get in now (StampToGetIn),
// so the patient can ask again with that much work. ParseBusyNote reads it.
func BusyNote(bits uint8) string { return fmt.Sprintf("%s%d", busyNotePrefix, bits) }

// ParseBusyNote returns the stamp bits a BusyNote asks for.
func ParseBusyNote(note string) (uint8, bool) {
	n, ok := strings.CutPrefix(note, busyNotePrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(n, 10, 8)
	if err != nil || v == 0 || v > MaxStampBits || BusyNote(uint8(v)) != note {
		return 0, false // the note is canonical: "+21" or "021" is none
	}
	return uint8(v), true
}

// weakest returns the request with the least stamp work, of those with
// equal work the one that came last (so the first keep their place).
func weakest(rs []*Reservation) *Reservation {
	var w *Reservation
	for _, r := range rs {
		if w == nil || cmp.Or(cmp.Compare(r.Request.Stamp.Bits, w.Request.Stamp.Bits),
			-r.Received.Compare(w.Received), slices.Compare(w.Request.ID[:], r.Request.ID[:])) < 0 {
			w = r
		}
	}
	return w
}

func minBits(w *Reservation) uint8 {
	if w == nil {
		return MaxStampBits
	}
	return w.Request.Stamp.Bits
}

// TakeDeclined returns, once, the signed declines of requests that a
// request with more stamp work pushed out (Receive), each with a BusyNote
// of the bits that get in now; seal each to its patient.
func (b *Book) TakeDeclined() []*Response {
	out := b.declined
	b.declined = nil
	return out
}

// trimFinished forgets the finished reservations of the oldest requests
// while there are more than MaxReservations of them; Sweep returns their
// IDs. It runs first in each call (Expire) and in Sweep, never after a
// call made one finished: the caller still seals that one's answer (Seal
// needs it). A forgotten request could still be accepted, and the stamp
// verifier, which remembers it as spent, is not stored: forgotUntil, which
// the node stores, refuses every request made no later.
func (b *Book) trimFinished() {
	if len(b.res)-b.live() <= b.cfg.MaxReservations {
		return
	}
	var done []*Reservation
	for _, r := range b.res {
		if r.State.Terminal() {
			done = append(done, r)
		}
	}
	slices.SortFunc(done, func(x, y *Reservation) int {
		return cmp.Or(x.Request.Created.Compare(y.Request.Created), slices.Compare(x.Request.ID[:], y.Request.ID[:]))
	})
	for _, r := range done[:len(done)-b.cfg.MaxReservations] {
		b.forget(r)
	}
}

// forget forgets finished reservation r for room and raises forgotUntil
// to its request's creation, or its arrival if earlier: dated ahead (as
// far as the clock skew allows), a flood of them refused every request
// made in the meantime (TestAttackForgotUntilFromTheFuture). A replay of
// one dated ahead of its arrival, by a patient's fast clock, is refused
// only while the verifier remembers its stamp.
func (b *Book) forget(r *Reservation) {
	delete(b.res, r.Request.ID)
	b.forgot = append(b.forgot, r.Request.ID)
	at := r.Request.Created
	if arrived := r.Received.Truncate(time.Second); arrived.Before(at) {
		at = arrived
	}
	b.RestoreForgotUntil(at)
}

// admit runs Receive's checks that come before the offer and the stamp.
func (b *Book) admit(q *Request, sender protocol.CompactIdentity, now time.Time) error {
	b.Expire(now)
	switch {
	case q.Slot.Therapist != b.key:
		return fmt.Errorf("request %v: for therapist %v: %w", q.ID, q.Slot.Therapist, ErrMismatch)
	case q.Patient == nil || sender != q.Patient.Compact():
		return fmt.Errorf("request %v: not sealed by its patient key: %w", q.ID, ErrMismatch)
	case q.Created.Sub(now) > b.cfg.ClockSkew:
		return fmt.Errorf("request %v: created %v: %w", q.ID, q.Created, ErrFromFuture)
	case now.Sub(q.Created) > b.cfg.RequestTTL:
		return fmt.Errorf("request %v: created %v: %w", q.ID, q.Created, ErrExpired)
	case b.res[q.ID] != nil:
		return fmt.Errorf("request %v: %w", q.ID, ErrReplay)
	}
	return q.validate()
}

// Hold holds the requested slot for the patient until until (at most
// MaxHold after now) and returns the signed response to seal to the
// patient. It fails (ErrTransition) when another reservation holds or has
// the same slot occurrence.
func (b *Book) Hold(id RequestID, until time.Time, note string, now time.Time) (*Response, error) {
	if !until.After(now) || until.Sub(now) > b.cfg.MaxHold {
		return nil, fmt.Errorf("hold %v: until %v, want within %v of %v: %w", id, until, b.cfg.MaxHold, now, ErrMalformed)
	}
	b.Expire(now)
	return b.decide(id, EventHold, until.Truncate(time.Second), note, now)
}

// Confirm confirms the reservation (BESTAETIGT) and returns the signed
// response. The slot should then be re-announced as VERGEBEN (SlotStatus).
func (b *Book) Confirm(id RequestID, note string, now time.Time) (*Response, error) {
	b.Expire(now)
	return b.decide(id, EventConfirm, time.Time{}, note, now)
}

// Decline declines the reservation (ABGELEHNT) and returns the signed response.
func (b *Book) Decline(id RequestID, note string, now time.Time) (*Response, error) {
	b.Expire(now)
	return b.decide(id, EventDecline, time.Time{}, note, now)
}

// decide applies the therapist's decision. It neither expires nor
// forgets anything: its caller ran Expire once at the start of its call,
// and a call that decides several (DeclineRivals) must not forget the
// first's reservation before its answer is sealed.
func (b *Book) decide(id RequestID, ev Event, hold time.Time, note string, now time.Time) (*Response, error) {
	r := b.res[id]
	if r == nil {
		return nil, fmt.Errorf("reservation %v: %w", id, ErrNotFound)
	}
	to, err := Transition(r.State, ev)
	if err != nil {
		return nil, err
	}
	if (to == Gehalten || to == Bestaetigt) && r.State == Angefragt && b.occupied(r) {
		return nil, fmt.Errorf("reservation %v: slot %v at %v is held or taken by another reservation: %w",
			id, r.Request.Slot, r.Request.Start, ErrTransition)
	}
	resp := &Response{ID: id, Slot: r.Request.Slot, State: to, HoldUntil: hold, Created: now.Truncate(time.Second), Nachricht: note}
	if err := resp.Sign(b.cfg.Identity); err != nil {
		return nil, err
	}
	r.State, r.HoldUntil, r.Updated = to, hold, now
	return resp, nil
}

// DeclineRivals declines (ABGELEHNT) every request still ANGEFRAGT for the
// slot occurrence reservation id holds or has, and returns the signed
// responses to seal to their patients: once the slot is taken, Hold and
// Confirm refuse them, and without an answer their patients would wait
// until the requests lapse. It does nothing while id does not hold its
// slot.
func (b *Book) DeclineRivals(id RequestID, note string, now time.Time) ([]*Response, error) {
	b.Expire(now)
	r := b.res[id]
	if r == nil {
		return nil, fmt.Errorf("reservation %v: %w", id, ErrNotFound)
	}
	if !r.active() {
		return nil, nil
	}
	var rivals []RequestID
	for oid, o := range b.res {
		if o != r && o.State == Angefragt && b.samePlace(o, r.Request.Slot.Slot, r.Request.Start) {
			rivals = append(rivals, oid)
		}
	}
	slices.SortFunc(rivals, func(a, b RequestID) int { return slices.Compare(a[:], b[:]) })
	var out []*Response
	for _, oid := range rivals {
		resp, err := b.decide(oid, EventDecline, time.Time{}, note, now)
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
	return out, nil
}

// occupied reports whether another reservation holds r's place.
func (b *Book) occupied(r *Reservation) bool {
	for _, o := range b.res {
		if o != r && o.active() && b.samePlace(o, r.Request.Slot.Slot, r.Request.Start) {
			return true
		}
	}
	return false
}

// samePlace reports whether reservation o is for the place of slot at
// start: the same start, or (with Occurs) two starts that are both
// occurrences of the slot (offered now or passed).
func (b *Book) samePlace(o *Reservation, slot uint16, start time.Time) bool {
	if o.Request.Slot.Therapist != b.key || o.Request.Slot.Slot != slot {
		return false
	}
	if o.Request.Start.Equal(start) {
		return true
	}
	return b.cfg.Occurs != nil && b.cfg.Occurs(slot, start) && b.cfg.Occurs(slot, o.Request.Start)
}

// CancelByTherapist cancels an accepted reservation (STORNIERT_THERAPEUT)
// and returns the signed cancel to seal to the patient.
func (b *Book) CancelByTherapist(id RequestID, now time.Time) (*Cancel, error) {
	b.Expire(now)
	r := b.res[id]
	if r == nil {
		return nil, fmt.Errorf("reservation %v: %w", id, ErrNotFound)
	}
	to, err := Transition(r.State, EventCancelTherapist)
	if err != nil {
		return nil, err
	}
	c := &Cancel{ID: id, Slot: r.Request.Slot, By: StorniertTherapeut, Created: now.Truncate(time.Second)}
	if err := c.Sign(b.cfg.Identity); err != nil {
		return nil, err
	}
	r.State, r.HoldUntil, r.Updated = to, time.Time{}, now
	return c, nil
}

// ApplyCancel applies a patient's cancel: it must be sealed by (sender) and
// signed by the request's ephemeral key, so only the patient can cancel.
func (b *Book) ApplyCancel(c *Cancel, sender protocol.CompactIdentity, now time.Time) error {
	b.Expire(now)
	r := b.res[c.ID]
	switch {
	case r == nil && c.By == StorniertPatient && c.Created.Sub(now) > b.cfg.ClockSkew:
		// Dated ahead, it would be dated at its arrival each time it is
		// applied again, and live for good (TestAttackEarlyCancelFromTheFuture).
		return fmt.Errorf("cancel %v: created %v: %w", c.ID, c.Created, ErrFromFuture)
	case r == nil && c.By == StorniertPatient && c.Verify(sender) == nil:
		// Dated at the cancel's own time when that is earlier: kept
		// again after a restart (the daemon leaves it in its inbox), it
		// must not live a lifetime longer each time.
		at := now
		if c.Created.Before(now) {
			at = c.Created
		}
		b.keepEarly(c.ID, sender, at)
		return fmt.Errorf("cancel %v: no such request yet (kept until it arrives): %w", c.ID, ErrNotFound)
	case r == nil:
		return fmt.Errorf("cancel %v: %w", c.ID, ErrNotFound)
	case c.By != StorniertPatient || c.Slot != r.Request.Slot || sender != r.Request.Patient.Compact():
		return fmt.Errorf("cancel %v: not the patient's cancel of this reservation: %w", c.ID, ErrMismatch)
	}
	if err := c.Verify(r.Request.Patient.Compact()); err != nil {
		return err
	}
	to, err := Transition(r.State, EventCancelPatient)
	if err != nil {
		return err
	}
	r.State, r.HoldUntil, r.Updated = to, time.Time{}, now
	return nil
}

// keepEarly remembers a patient's cancel of a request that has not
// arrived: the mesh may deliver the cancel first. Only the key that sealed
// and signed it can be the request's (Receive checks), so a cancel
// somebody else made for the ID cancels nothing; a flood of them pushes
// the oldest out, and the request is then taken as if its cancel had been
// lost.
func (b *Book) keepEarly(id RequestID, patient protocol.CompactIdentity, now time.Time) {
	if _, ok := b.early[id]; ok {
		return
	}
	if len(b.earlyOrder) >= MaxEarlyCancels {
		delete(b.early, b.earlyOrder[0])
		b.earlyOrder = b.earlyOrder[1:]
	}
	b.early[id] = earlyCancel{patient: patient, at: now}
	b.earlyOrder = append(b.earlyOrder, id)
}

// HasEarly reports whether the book keeps a cancel of request id that came
// before the request (ApplyCancel).
func (b *Book) HasEarly(id RequestID) bool {
	_, ok := b.early[id]
	return ok
}

// expireEarly forgets early cancels whose request could no longer be
// accepted (older than RequestTTL when the cancel arrived).
func (b *Book) expireEarly(now time.Time) {
	i := 0
	for ; i < len(b.earlyOrder); i++ {
		if e := b.early[b.earlyOrder[i]]; now.Sub(e.at) <= b.cfg.RequestTTL+b.cfg.ClockSkew {
			break
		}
		delete(b.early, b.earlyOrder[i])
	}
	b.earlyOrder = b.earlyOrder[i:]
}

// Expire moves holds past HoldUntil, requests unanswered for RequestTTL
// and requests for an occurrence that has started (unless, with Occurs,
// it is a week of a weekly place, which is still to be had) to ABGELAUFEN
// and returns the reservations that changed state.
func (b *Book) Expire(now time.Time) []Reservation {
	b.restoredLive = -1
	b.trimFinished() // before this call makes any finished
	b.expireEarly(now)
	var changed []Reservation
	for _, r := range b.res {
		// started asks Occurs: only for a waiting request, which it may
		// end (TestExpireAsksOccursOnlyForWaiting).
		lapsed := r.State == Angefragt && (now.Sub(r.Request.Created) > b.cfg.RequestTTL || b.started(r, now))
		if (r.State == Gehalten && !now.Before(r.HoldUntil)) || lapsed {
			r.State, r.HoldUntil, r.Updated = Abgelaufen, time.Time{}, now
			changed = append(changed, *r)
		}
	}
	sortReservations(changed)
	return changed
}

// started reports whether r asks for an occurrence that has begun and is
// no longer to be had.
func (b *Book) started(r *Reservation, now time.Time) bool {
	return r.Request.Start.Before(now) && (b.cfg.Occurs == nil || !b.cfg.Occurs(r.Request.Slot.Slot, r.Request.Start))
}

// Sweep forgets, to bound memory, the reservations that can no longer
// matter: terminal ones whose request is older than RequestTTL, and
// confirmed ones whose appointment started more than RequestTTL ago. It
// returns their IDs (the daemon deletes them from its store), and those of
// the finished reservations forgotten for room since the last Sweep (the
// oldest requests', beyond MaxReservations of them). A replay of a
// forgotten request is refused all the same: it is older than RequestTTL,
// or made no later than ForgotUntil (which the node stores with the
// deletions; the stamp verifier's memory of spent stamps is not stored).
func (b *Book) Sweep(now time.Time) []RequestID {
	b.restoredLive = -1
	b.trimFinished()
	gone := b.forgot
	b.forgot = nil
	for id, r := range b.res {
		if (r.State.Terminal() && now.Sub(r.Request.Created) > b.cfg.RequestTTL) ||
			(r.State == Bestaetigt && now.Sub(r.Request.Start) > b.cfg.RequestTTL) {
			delete(b.res, id)
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, func(a, b RequestID) int { return slices.Compare(a[:], b[:]) })
	return gone
}

// Get returns a copy of reservation id.
func (b *Book) Get(id RequestID) (Reservation, error) {
	if r := b.res[id]; r != nil {
		return *r, nil
	}
	return Reservation{}, fmt.Errorf("reservation %v: %w", id, ErrNotFound)
}

// List returns copies of every reservation, oldest request first.
func (b *Book) List() []Reservation {
	out := make([]Reservation, 0, len(b.res))
	for _, r := range b.res {
		out = append(out, *r)
	}
	sortReservations(out)
	return out
}

// live counts the reservations that are not finished.
func (b *Book) live() int {
	n := 0
	for _, r := range b.res {
		if !r.State.Terminal() {
			n++
		}
	}
	return n
}

func sortReservations(rs []Reservation) {
	slices.SortFunc(rs, func(a, b Reservation) int {
		return cmp.Or(a.Request.Created.Compare(b.Request.Created), slices.Compare(a.Request.ID[:], b.Request.ID[:]))
	})
}

// SlotStatus returns the public status of the therapist's place (slot at
// start, and with Occurs its other occurrences) as the reservations imply
// it: VERGEBEN when confirmed, GEHALTEN when held, FREI otherwise. Feed it
// to the Publisher; announces never say who.
func (b *Book) SlotStatus(slot uint16, start time.Time) SlotStatus {
	st := SlotFrei
	for _, r := range b.res {
		if !b.samePlace(r, slot, start) {
			continue
		}
		switch r.State {
		case Bestaetigt:
			return SlotVergeben
		case Gehalten:
			st = SlotGehalten
		}
	}
	return st
}

// Restore puts back a reservation the daemon persisted (for example after a
// restart). It refuses a duplicate ID, an invalid state or a live
// reservation beyond MaxReservations; finished ones beyond it forget the
// oldest (Sweep returns them).
func (b *Book) Restore(r Reservation) error {
	switch {
	case !r.State.Valid() || r.Request.Patient == nil:
		return fmt.Errorf("restore reservation %v: state %v: %w", r.Request.ID, r.State, ErrMalformed)
	case b.res[r.Request.ID] != nil:
		return fmt.Errorf("restore reservation %v: %w", r.Request.ID, ErrReplay)
	}
	if b.restoredLive < 0 {
		b.restoredLive = b.live()
	}
	if !r.State.Terminal() {
		if b.restoredLive >= b.cfg.MaxReservations {
			return fmt.Errorf("restore reservation %v: %w", r.Request.ID, ErrLimit)
		}
		b.restoredLive++
	}
	b.res[r.Request.ID] = &r
	return nil
}

// Seal seals a response or cancel for reservation id to its patient's
// ephemeral key; the daemon sends the result to Request.Patient.Address().
func (b *Book) Seal(rand io.Reader, id RequestID, m Message, now time.Time) ([]byte, error) {
	r := b.res[id]
	if r == nil {
		return nil, fmt.Errorf("seal for %v: %w", id, ErrNotFound)
	}
	raw, err := marshalMessage(m)
	if err != nil {
		return nil, err
	}
	return SealMessage(rand, b.cfg.Identity, r.Request.Patient, raw, now, DefaultMessageTTL)
}

func marshalMessage(m Message) ([]byte, error) {
	switch m := m.(type) {
	case *Request:
		return m.MarshalBinary()
	case *Response:
		return m.MarshalBinary()
	case *Cancel:
		return m.MarshalBinary()
	case *RemoteQuery:
		return m.MarshalBinary()
	case *QueryAnswer:
		return m.MarshalBinary()
	}
	return nil, fmt.Errorf("marshal %T: %w", m, ErrMalformed)
}

// ForgotUntil returns the creation time of the newest request whose
// finished reservation the book forgot for room, or its arrival if that
// was earlier (zero: none): it refuses a request made no later. The node stores it with the deletions Sweep
// asks for and gives it back after a restart (RestoreForgotUntil).
func (b *Book) ForgotUntil() time.Time { return b.forgotUntil }

// RestoreForgotUntil puts back what ForgotUntil returned before a restart.
func (b *Book) RestoreForgotUntil(t time.Time) {
	if t.After(b.forgotUntil) {
		b.forgotUntil = t
	}
}
