package daemon

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// The therapist's own offer: a profile (signed, naming the credential),
// the announce-level data and the slots, released by the pure publisher:
// the therapist's edits at once (a few per epoch), status changes at epoch
// boundaries. The announce sequence number is written to the store
// before an announce under it leaves the node, so it never goes backwards
// after a restart (a lower one would be refused by every index as stale).

// Own-offer store keys.
const (
	keyOwnSeq        = "f/o/seq"
	keyOwnProfile    = "f/o/profile"
	keyOwnCredential = "f/o/credential"
	keyOwnOffer      = "f/o/offer"
	keyOwnAnnounce   = "f/o/announce"
	keyQueriesUsed   = "f/g/q"
	// keyForgotUntil is the own book's ForgotUntil (Unix seconds, u64).
	keyForgotUntil = "f/o/forgot"
)

// ownOffer is the stored form of the publisher's input (JSON, daemon
// internal): the template's filterable fields and the slots.
type ownOffer struct {
	Profile       []byte    `json:"profile"`
	PLZ           uint32    `json:"plz"`
	Verfahren     uint8     `json:"verfahren"`
	Kostentraeger uint8     `json:"kostentraeger"`
	Altersgruppen uint8     `json:"altersgruppen"`
	Sprachen      []string  `json:"sprachen"`
	Geschlecht    uint8     `json:"geschlecht"`
	BfZugang      bool      `json:"bf_zugang"`
	BfWC          bool      `json:"bf_wc"`
	Warteliste    bool      `json:"warteliste"`
	Withdrawn     bool      `json:"withdrawn"`
	Slots         []ownSlot `json:"slots"`
	// MaxSlotID is the highest slot ID ever published: new slots get IDs
	// above it (fapp_slotid.go).
	MaxSlotID uint16 `json:"max_slot_id,omitempty"`
}

type ownSlot struct {
	ID            uint16    `json:"id"`
	Terminart     uint8     `json:"terminart"`
	Verfahren     uint8     `json:"verfahren"`
	Setting       uint8     `json:"setting"`
	Modalitaet    uint8     `json:"modalitaet"`
	Voraussetzung uint8     `json:"voraussetzung"`
	Start         time.Time `json:"start"`
	Dauer         uint8     `json:"dauer"`
	Woechentlich  bool      `json:"woechentlich"`
	Bis           time.Time `json:"bis"`
	Plaetze       uint8     `json:"plaetze"`
	Status        uint8     `json:"status"`
}

func offerOf(t *fapp.SlotAnnounce, slots []fapp.Slot, withdrawn bool) ownOffer {
	o := ownOffer{Profile: t.Profile[:], PLZ: uint32(t.PLZ), Verfahren: uint8(t.Verfahren), Kostentraeger: uint8(t.Kostentraeger),
		Altersgruppen: uint8(t.Altersgruppen), Geschlecht: uint8(t.Geschlecht), BfZugang: t.BarrierefreiZugang,
		BfWC: t.BarrierefreiWC, Warteliste: t.Warteliste, Withdrawn: withdrawn, Sprachen: []string{}}
	for _, l := range t.Sprachen {
		o.Sprachen = append(o.Sprachen, l.String())
	}
	for _, s := range slots {
		o.Slots = append(o.Slots, ownSlot{ID: s.ID, Terminart: uint8(s.Terminart), Verfahren: uint8(s.Verfahren),
			Setting: uint8(s.Setting), Modalitaet: uint8(s.Modalitaet), Voraussetzung: uint8(s.Voraussetzung),
			Start: s.Start, Dauer: s.Dauer, Woechentlich: s.Woechentlich, Bis: s.Bis, Plaetze: s.Plaetze, Status: uint8(s.Status)})
	}
	return o
}

func (o *ownOffer) template() (*fapp.SlotAnnounce, error) {
	t := &fapp.SlotAnnounce{PLZ: fapp.PLZ(o.PLZ), Verfahren: fapp.VerfahrenSet(o.Verfahren),
		Kostentraeger: fapp.KostentraegerSet(o.Kostentraeger), Altersgruppen: fapp.AltersgruppeSet(o.Altersgruppen),
		Geschlecht: fapp.Geschlecht(o.Geschlecht), BarrierefreiZugang: o.BfZugang, BarrierefreiWC: o.BfWC, Warteliste: o.Warteliste}
	if len(o.Profile) != fapp.ProfileRefSize {
		return nil, fmt.Errorf("%w: profile reference of %d bytes", store.ErrCorrupt, len(o.Profile))
	}
	copy(t.Profile[:], o.Profile)
	for _, s := range o.Sprachen {
		l, err := fapp.ParseSprache(s)
		if err != nil {
			return nil, err
		}
		t.Sprachen = append(t.Sprachen, l)
	}
	return t, nil
}

func (o *ownOffer) slots() []fapp.Slot {
	var out []fapp.Slot
	for _, s := range o.Slots {
		out = append(out, fapp.Slot{ID: s.ID, Terminart: fapp.Terminart(s.Terminart), Verfahren: fapp.Verfahren(s.Verfahren),
			Setting: fapp.Setting(s.Setting), Modalitaet: fapp.Modalitaet(s.Modalitaet), Voraussetzung: fapp.Voraussetzung(s.Voraussetzung),
			Start: s.Start, Dauer: s.Dauer, Woechentlich: s.Woechentlich, Bis: s.Bis, Plaetze: s.Plaetze, Status: fapp.SlotStatus(s.Status)})
	}
	return out
}

// newPublisher makes the publisher continuing after sequence seq.
func (f *fappNode) newPublisher(seq uint32) error {
	epoch := time.Duration(f.n.cfg.FAPP.Epoch).Truncate(time.Minute)
	epoch = max(epoch, time.Minute)
	// Each node releases at its own fixed place in the epoch, so the
	// therapists of a region do not all transmit at the same instant.
	off := fapp.EpochOffset(fapp.TherapistKeyOf(f.n.id.Compact()), epoch)
	p, err := fapp.NewPublisher(fapp.PublisherConfig{Epoch: epoch, Sequence: seq, Offset: off, EarlyReleases: fappEarlyReleases})
	if err != nil {
		return err
	}
	f.pub = p
	return nil
}

// setOfferLocked replaces the own offer (template and slots); it is
// released at the next tick (an early release) or, when the epoch's early
// releases are used up, at the next epoch boundary.
func (f *fappNode) setOfferLocked(t *fapp.SlotAnnounce, slots []fapp.Slot, now time.Time) error {
	if f.profile == nil {
		return fmt.Errorf("%w: set the therapist profile (with its credential) before publishing slots", rpcapi.ErrInvalidParams)
	}
	t.Profile = mustRef(f.profile)
	t.Therapist = fapp.TherapistKeyOf(f.n.id.Compact())
	// Sign a trial announce now, so that bad input is an API error and
	// not a failed release at the next boundary.
	trial := *t
	trial.Slots, trial.Issued = slots, now.Truncate(time.Minute)
	trial.Expires = trial.Issued.Add(fapp.DefaultAnnounceLifetime)
	if _, err := fapp.SignAnnounce(f.n.id, &trial, now); err != nil {
		return fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	f.pub.SetProfile(*t, now)
	f.pub.SetSlots(slots, now)
	f.slotMark = slotMarkOf(f.slotMark, slots)
	f.template = t
	return f.saveOfferLocked(false)
}

func (f *fappNode) saveOfferLocked(withdrawn bool) error {
	b := store.FAPPBatch{Put: map[string][]byte{}}
	if err := f.putOfferLocked(&b, withdrawn); err != nil {
		return err
	}
	return f.write(b)
}

// putOfferLocked adds the own offer to b (nothing without one).
func (f *fappNode) putOfferLocked(b *store.FAPPBatch, withdrawn bool) error {
	if f.template == nil {
		return nil
	}
	o := offerOf(f.template, f.pub.Slots(), withdrawn)
	o.MaxSlotID = f.slotMark
	v, err := json.Marshal(o)
	if err != nil {
		return err
	}
	b.Put[keyOwnOffer] = v
	return nil
}

// releaseLocked publishes the announce the publisher has due, after its
// sequence number is on disk.
func (f *fappNode) releaseLocked(now time.Time) {
	if f.template == nil {
		return
	}
	raw, a, ok, err := f.pub.Release(f.n.id, now)
	if err != nil {
		f.n.log.Warn("cannot release the own FAPP announce", "err", err)
		return
	}
	if !ok {
		return
	}
	seq := binary.BigEndian.AppendUint32(nil, a.Sequence)
	if err := f.write(store.FAPPBatch{Put: map[string][]byte{keyOwnSeq: seq, keyOwnAnnounce: raw}}); err != nil {
		return // not published: the next release uses a higher sequence anyway
	}
	f.saveOfferLocked(a.Withdrawn)
	f.lastRaw = raw
	key := regionKey(a.Region())
	if f.profile != nil && f.profile.Sequence != f.profileSent {
		// A changed profile goes out with the announce that names it;
		// otherwise nodes that lack it ask (onProfileRequestLocked).
		f.profileSent = f.profile.Sequence
		f.queue(fappOut{channel: key, body: fapp.AppendBroadcast(nil, regionProfile, f.profileRaw)})
	}
	f.queue(fappOut{channel: key, body: fapp.AppendBroadcast(nil, regionAnnounce, raw)})
	if f.following(a.Region()) {
		f.idx.Add(a.Clone(), now)
		if f.profile != nil {
			f.idx.AddProfile(f.profile, now)
		}
	}
	f.stats.add("own_announces_released", 1)
	f.signal()
}

// setProfileLocked signs and stores the own profile.
func (f *fappNode) setProfileLocked(name string, schwerpunkte []string, now time.Time) (*fapp.Profile, error) {
	if f.credential == nil {
		return nil, fmt.Errorf("%w: import the therapist's credential first (fapp.credential.import)", rpcapi.ErrInvalidParams)
	}
	p := &fapp.Profile{Identity: f.n.id.Public(), Sequence: 1, Issued: now.Truncate(time.Second), Name: name,
		Schwerpunkte: schwerpunkte, Credential: *f.credential}
	if f.profile != nil {
		p.Sequence = f.profile.Sequence + 1
	}
	raw, err := fapp.SignProfile(f.n.id, p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	if err := f.write(store.FAPPBatch{Put: map[string][]byte{keyOwnProfile: raw}}); err != nil {
		return nil, err
	}
	f.profile, f.profileRaw = p, raw
	if f.template != nil {
		// The announces name the profile by its hash: re-announce.
		t := *f.template
		t.Profile = mustRef(p)
		f.template = &t
		f.pub.SetProfile(t, now)
		f.saveOfferLocked(false)
	}
	return p, nil
}

// importCredentialLocked takes the therapist's credential, which must name
// this node's keys.
func (f *fappNode) importCredentialLocked(raw []byte, now time.Time) (*fapp.Credential, error) {
	c, err := fapp.ParseCredential(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	if c.TherapistKey() != fapp.TherapistKeyOf(f.n.id.Compact()) {
		return nil, fmt.Errorf("%w: the credential names another therapist key (%v), not this node's (%v)",
			rpcapi.ErrInvalidParams, c.TherapistKey(), fapp.TherapistKeyOf(f.n.id.Compact()))
	}
	if err := f.write(store.FAPPBatch{Put: map[string][]byte{keyOwnCredential: raw}}); err != nil {
		return nil, err
	}
	f.credential = c
	return c, nil
}

// slotStatusLocked sets a slot's public status from the book (after a
// hold, confirmation, cancel or expiry) and adds the slots to b, the batch
// that stores the reservation: in two writes, a crash between them left
// the stored offer at the old status for good (a held slot FREI, a
// cancelled one GEHALTEN).
func (f *fappNode) slotStatusLocked(b *store.FAPPBatch, r fapp.Reservation, now time.Time) {
	if f.template == nil {
		return
	}
	own := f.pub.Slots()
	i := slices.IndexFunc(own, func(s fapp.Slot) bool { return s.ID == r.Request.Slot.Slot })
	if i < 0 || !offers(own[i], r.Request.Start) {
		return // withdrawn, or moved: the reservation's occurrence is not on offer
	}
	st := f.book.SlotStatus(r.Request.Slot.Slot, r.Request.Start)
	if err := f.pub.SetStatus(r.Request.Slot.Slot, st, now); err == nil {
		f.putOfferLocked(b, false)
	}
}

func jsonUnmarshal(v []byte, dst any) error { return json.Unmarshal(v, dst) }
