package fapp

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Publisher defaults.
const (
	// DefaultEpoch is the batching period of slot changes.
	DefaultEpoch = 15 * time.Minute
	// DefaultAnnounceLifetime is the lifetime of a published announce; the
	// publisher refreshes it after half of it.
	DefaultAnnounceLifetime = 24 * time.Hour
)

// PublisherConfig configures a Publisher. Zero fields take the defaults.
type PublisherConfig struct {
	// Epoch is the batching period: changes are released only at the next
	// boundary, a multiple of Epoch since the Unix epoch plus Offset
	// (15-minute boundaries by default), and the announce is dated at that
	// boundary.
	Epoch time.Duration
	// Lifetime is the announce lifetime (at most MaxAnnounceLifetime).
	Lifetime time.Duration
	// Sequence is the last sequence number used (persisted by the daemon),
	// so a restarted publisher continues above it.
	Sequence uint32
	// Offset moves the boundaries to Offset past each multiple of Epoch
	// (whole seconds, less than Epoch; EpochOffset derives it from the
	// therapist key). With every node at offset zero, every therapist
	// releases at the same instant and the announces collide on a radio.
	Offset time.Duration
	// EarlyReleases is how many announces per epoch may go out before the
	// boundary to carry the therapist's own edits (SetProfile, SetSlots,
	// Withdraw) at once; 0 releases everything at boundaries only. An early
	// announce shows every slot it already published with the status it
	// was published with: status changes (reservations) still wait for
	// the boundary.
	EarlyReleases int
}

// EpochOffset returns the fixed offset of therapist k's boundaries within
// an epoch: SHA-256("fapp/epoch-offset/v1" || k) as a big-endian uint64,
// modulo the epoch in seconds. It depends on the public key alone, so it is
// stable across restarts and says nothing about reservations (anyone can
// compute it; it only spreads therapists over the epoch).
func EpochOffset(k TherapistKey, epoch time.Duration) time.Duration {
	secs := uint64(epoch / time.Second)
	if secs == 0 {
		return 0
	}
	h := sha256.New()
	h.Write([]byte("fapp/epoch-offset/v1"))
	h.Write(k[:])
	return time.Duration(binary.BigEndian.Uint64(h.Sum(nil))%secs) * time.Second
}

// Publisher turns a therapist's slot changes into announces, released only
// at fixed epoch boundaries, so an observer who watches announces cannot
// time a reservation more finely than the epoch: every change inside one
// epoch appears together, in an announce dated at the boundary. With
// PublisherConfig.EarlyReleases, the therapist's own edits go out at once
// (a bounded number per epoch) with every published slot's status as
// published; status changes still wait for the boundary. It is not safe
// for concurrent use.
type Publisher struct {
	cfg       PublisherConfig
	template  SlotAnnounce
	slots     []Slot
	withdrawn bool
	ready     bool // a template has been set
	pending   bool // a change awaits release
	// repeat: an early announce is repeated at the next boundary (in
	// memory only: after a restart the refresh is the next chance).
	repeat   bool
	changed  time.Time // when the first pending change happened
	released time.Time // issue time of the last release
	// own: a therapist's edit awaits an early release; shown: the status
	// of each slot as the last announce published it; early counts the
	// early releases in the epoch that starts at earlyIn.
	own     bool
	shown   map[uint16]SlotStatus
	unknown bool // restored without the last announce: no early release
	// held: each slot's status before its first status change since the
	// last boundary release.
	held    map[uint16]SlotStatus
	early   int
	earlyIn time.Time
}

// NewPublisher returns a publisher with nothing to publish yet.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.Epoch = cmp.Or(cfg.Epoch, DefaultEpoch)
	cfg.Lifetime = cmp.Or(cfg.Lifetime, DefaultAnnounceLifetime)
	switch {
	case cfg.Epoch < time.Minute || cfg.Epoch%time.Minute != 0:
		return nil, fmt.Errorf("publisher: epoch %v: want whole minutes: %w", cfg.Epoch, ErrMalformed)
	case cfg.Offset < 0 || cfg.Offset >= cfg.Epoch || cfg.Offset%time.Second != 0:
		return nil, fmt.Errorf("publisher: offset %v: want whole seconds below the epoch %v: %w", cfg.Offset, cfg.Epoch, ErrMalformed)
	case cfg.EarlyReleases < 0:
		return nil, fmt.Errorf("publisher: %d early releases: %w", cfg.EarlyReleases, ErrMalformed)
	case cfg.Lifetime > MaxAnnounceLifetime || cfg.Lifetime%time.Minute != 0 || cfg.Lifetime < 2*cfg.Epoch:
		return nil, fmt.Errorf("publisher: lifetime %v: want whole minutes, >= 2 epochs, <= %v: %w", cfg.Lifetime, MaxAnnounceLifetime, ErrMalformed)
	}
	return &Publisher{cfg: cfg}, nil
}

// SetProfile sets the therapist's announce-level data: Profile, PLZ,
// Verfahren, Kostentraeger, Altersgruppen, Sprachen, Geschlecht,
// accessibility and Warteliste (the other fields of a are ignored). The
// change is released at the next boundary, or early (EarlyReleases).
func (p *Publisher) SetProfile(a SlotAnnounce, now time.Time) {
	a.Sprachen = slices.Clone(a.Sprachen)
	slices.SortFunc(a.Sprachen, func(x, y Sprache) int { return cmp.Compare(x.String(), y.String()) })
	a.Sprachen = slices.Compact(a.Sprachen)
	a.Slots, a.Withdrawn, a.Signature = nil, false, [protocol.SignatureSize]byte{}
	p.template, p.ready = a, true
	p.touchOwn(now)
}

// SetSlots replaces the therapist's slots (released at the next boundary,
// or early: EarlyReleases).
func (p *Publisher) SetSlots(slots []Slot, now time.Time) {
	p.slots, p.withdrawn = slices.Clone(slots), false
	p.touchOwn(now)
}

// SetStatus changes one slot's status (released at the next boundary, never
// early: a status change is what a reservation does).
func (p *Publisher) SetStatus(id uint16, st SlotStatus, now time.Time) error {
	if !st.Valid() {
		return fmt.Errorf("publisher: status %v: %w", st, ErrMalformed)
	}
	i := slices.IndexFunc(p.slots, func(s Slot) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("publisher: slot %d: %w", id, ErrNotFound)
	}
	if p.slots[i].Status != st {
		if _, ok := p.held[id]; !ok {
			if p.held == nil {
				p.held = map[uint16]SlotStatus{}
			}
			p.held[id] = p.slots[i].Status
		}
		p.slots[i].Status = st
		p.touch(now)
	}
	return nil
}

// Withdraw withdraws the offer: the next release is a withdrawal announce
// with no slots.
func (p *Publisher) Withdraw(now time.Time) {
	p.slots, p.withdrawn = nil, true
	p.touchOwn(now)
}

// Offers checks that the therapist offers slot id at start: the slot
// exists, is FREI, and start is one of its occurrences. A Book uses it (via
// BookConfig.Offers) to refuse requests for slots that do not exist.
func (p *Publisher) Offers(id uint16, start time.Time) error {
	i := slices.IndexFunc(p.slots, func(s Slot) bool { return s.ID == id })
	switch {
	case p.withdrawn || i < 0:
		return fmt.Errorf("slot %d: not offered: %w", id, ErrNotFound)
	case p.slots[i].Status != SlotFrei:
		return fmt.Errorf("slot %d: %v: %w", id, p.slots[i].Status, ErrNotFound)
	}
	s := p.slots[i]
	if t, ok := s.firstFrom(start, s.Occurrences()); !ok || !t.Equal(start) {
		return fmt.Errorf("slot %d: no occurrence at %v: %w", id, start.UTC(), ErrNotFound)
	}
	return nil
}

// Slots returns a copy of the current slots (the therapist's own view).
func (p *Publisher) Slots() []Slot { return slices.Clone(p.slots) }

// Sequence returns the last sequence number used (persist it).
func (p *Publisher) Sequence() uint32 { return p.cfg.Sequence }

func (p *Publisher) touch(now time.Time) {
	if !p.pending {
		p.pending, p.changed = true, now
	}
}

// touchOwn records a change the therapist made (not a reservation's), which
// may go out before the boundary (EarlyReleases).
func (p *Publisher) touchOwn(now time.Time) {
	p.touch(now)
	p.own = true
}

// Early reports whether Release would release an own edit early at now:
// one waits and the epoch's early releases are not used up.
func (p *Publisher) Early(now time.Time) bool {
	if !p.ready || !p.own || p.unknown || p.cfg.EarlyReleases == 0 {
		return false
	}
	// Only a later epoch brings a fresh budget: a clock stepped back
	// must not (a flapping clock would announce without bound).
	return p.boundary(now).After(p.earlyIn) || p.early < p.cfg.EarlyReleases
}

// boundary returns the epoch boundary at or before t.
func (p *Publisher) boundary(t time.Time) time.Time {
	e, off := int64(p.cfg.Epoch/time.Second), int64(p.cfg.Offset/time.Second)
	x := t.Unix() - off
	k := x / e
	if x < 0 && x%e != 0 {
		k-- // floor, before 1970 + Offset
	}
	return time.Unix(k*e+off, 0).UTC()
}

// NextBoundary returns the first epoch boundary after t: when a status
// change made at t goes public. Answers that would tell it earlier (a
// refusal because the slot was just held) wait for it.
func (p *Publisher) NextBoundary(t time.Time) time.Time { return p.boundary(t).Add(p.cfg.Epoch) }

// Next returns when the next announce is due: the first boundary after a
// pending change, or the boundary at which the last announce needs a
// refresh (half its lifetime). ok is false when nothing will be due.
func (p *Publisher) Next() (at time.Time, ok bool) {
	switch {
	case !p.ready:
		return time.Time{}, false
	case p.pending:
		return p.boundary(p.changed).Add(p.cfg.Epoch), true
	case p.repeat:
		return p.released.Add(p.cfg.Epoch), true
	case p.withdrawn:
		return time.Time{}, false
	}
	return p.boundary(p.released.Add(p.cfg.Lifetime / 2)).Add(p.cfg.Epoch), true
}

// Repeating reports whether the next release Next names only repeats an
// early announce (nothing new is pending).
func (p *Publisher) Repeating() bool { return p.ready && !p.pending && p.repeat }

// Release returns the signed announce due at now, or ok false when none is
// due (call it at every boundary; calling it more often is harmless). The
// announce is issued at the boundary, not at now, carries the next sequence
// number, drops single slots that have started by now and moves weekly ones
// to their next occurrence.
func (p *Publisher) Release(id *protocol.Identity, now time.Time) (raw []byte, a *SlotAnnounce, ok bool, err error) {
	at, due := p.Next()
	early := false
	if !due || now.Before(at) {
		if !p.Early(now) {
			return nil, nil, false, nil
		}
		early = true
	}
	issued := p.boundary(now)
	a = &SlotAnnounce{}
	*a = p.template
	a.Sequence, a.Issued, a.Expires = p.cfg.Sequence+1, issued, issued.Add(p.cfg.Lifetime)
	a.Withdrawn = p.withdrawn
	if !p.withdrawn {
		p.slots = rollSlots(p.slots, now.Truncate(time.Minute))
		a.Slots = slices.Clone(p.slots)
		if early {
			p.showPublished(a.Slots)
		}
	}
	raw, err = SignAnnounce(id, a, now)
	if err != nil {
		return nil, nil, false, err
	}
	p.cfg.Sequence, p.released, p.pending, p.own = a.Sequence, issued, false, false
	p.remember(a.Slots)
	if !early {
		p.held = nil // every status is published now
	}
	if early {
		p.countEarly(issued)
		// The boundary announce still follows: it carries a status change
		// the early one did not show (pending), and it repeats the edit
		// (repeat) for a node
		// that missed the early one (a broadcast sent right after a
		// subscription can reach nobody; without this the next chance
		// would be the refresh, half a lifetime later).
		p.repeat = true
		p.pending = slices.ContainsFunc(p.slots, func(s Slot) bool { return s.Status != p.shown[s.ID] })
	} else {
		p.repeat = false
	}
	return raw, a, true, nil
}

// showPublished gives every slot that an announce published already the
// status it was published with, so that an early release does not time a
// reservation: status changes go out at boundaries only.
func (p *Publisher) showPublished(slots []Slot) {
	for i, s := range slots {
		if st, ok := p.shown[s.ID]; ok {
			slots[i].Status = st
		} else if st, ok := p.held[s.ID]; ok {
			// Not in the last announce (removed early and added back):
			// the status before the reservation, not the reservation's.
			slots[i].Status = st
		}
	}
}

// Restored tells a publisher that its offer (SetProfile, SetSlots) was
// restored after a restart, not edited, and gives it the last announce it
// released before (nil if unknown): an early release must not show a status
// changed since then. Without it, or when its sequence number is not
// PublisherConfig.Sequence (not the last one), the first release waits for
// a boundary.
func (p *Publisher) Restored(last *SlotAnnounce) {
	p.own = false
	if last == nil {
		p.unknown = true
		return
	}
	if last.Sequence != p.cfg.Sequence {
		// Not the last announce released (a stale store): its statuses
		// may be older than what went out since.
		p.unknown = true
		return
	}
	p.remember(last.Slots)
}

// remember records the statuses an announce published.
func (p *Publisher) remember(slots []Slot) {
	p.unknown = false
	p.shown = make(map[uint16]SlotStatus, len(slots))
	for _, s := range slots {
		p.shown[s.ID] = s.Status
	}
}

func (p *Publisher) countEarly(epoch time.Time) {
	if epoch.After(p.earlyIn) {
		p.earlyIn, p.early = epoch, 0
	}
	p.early++
}

// rollSlots drops single slots starting before t and moves weekly ones to
// their first occurrence at or after t (dropping those with none left).
func rollSlots(slots []Slot, t time.Time) []Slot {
	out := slots[:0]
	for _, s := range slots {
		if !s.Start.Before(t) {
			out = append(out, s)
			continue
		}
		if !s.Woechentlich {
			continue
		}
		n := s.Occurrences()
		start, ok := s.firstFrom(t, n)
		if !ok {
			continue
		}
		if !s.Bis.IsZero() && start.Equal(s.Bis) {
			s.Bis = time.Time{}
		}
		s.Start = start
		out = append(out, s)
	}
	return out
}
