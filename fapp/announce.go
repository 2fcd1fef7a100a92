package fapp

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Announce sizes and limits.
const (
	// MaxSlots bounds the slots of one announce.
	MaxSlots = 32
	// MaxSprachen bounds the languages of one announce.
	MaxSprachen = 8
	// MaxGroupSeats bounds the seats of a group slot (6-14 people with two
	// therapists).
	MaxGroupSeats = 14
	// MaxWeeks bounds how many weeks a weekly place may be offered ahead.
	MaxWeeks = 104
	// MaxAnnounceLifetime bounds Expires - Issued (the wire has 16 bits of
	// minutes, 45.5 days).
	MaxAnnounceLifetime = 30 * 24 * time.Hour
	// MaxSlotHorizon bounds how far after Issued a slot may start.
	MaxSlotHorizon = 400 * 24 * time.Hour
	// DefaultClockSkew is how far ahead of a receiver's clock an announce may
	// be issued.
	DefaultClockSkew = 10 * time.Minute

	// LoRaFrameSize is the largest frame a LoRa link carries.
	LoRaFrameSize = 255
	// MaxLoRaAnnounceSize is the largest announce that fits one LoRa frame
	// as a broadcast (1 kind byte) inside an unsigned channel frame (the
	// announce signs itself, so it needs no signed channel frame):
	// 255 - 24 - 1 = 230 bytes.
	MaxLoRaAnnounceSize = LoRaFrameSize - protocol.ChannelOverhead - BroadcastOverhead

	announceVersion    = 1
	announceHeaderSize = 1 + 1 + 32 + ProfileRefSize + 4 + 4 + 2 + 3 + 1 + 1 + 1 + 1 // 59, with the language count
	slotSize           = 11
	maxAnnounceSize    = announceHeaderSize + 2*MaxSprachen + 1 + MaxSlots*slotSize + protocol.SignatureSize
	labelAnnounce      = "fapp/announce/v1"
)

// AnnounceSize returns the encoded size of an announce with the given
// number of languages and slots: 124 + 2 languages + 11 slots bytes.
func AnnounceSize(sprachen, slots int) int {
	return announceHeaderSize + 2*sprachen + 1 + slots*slotSize + protocol.SignatureSize
}

// Announce flag bits (byte 1).
const (
	flagWithdrawn    = 1 << 0
	flagWarteliste   = 1 << 1
	flagBfZugang     = 1 << 2
	flagBfWC         = 1 << 3
	flagGenderShift  = 4 // bits 4-5: Geschlecht, 0 = not stated
	flagReservedMask = 0xc0
)

// SignAnnounce checks a, sets its therapist key to id's, signs it and
// returns the encoding. now is the signing time: a must not be issued more
// than DefaultClockSkew after it nor be expired, and no slot may start
// before now or before a.Issued (ErrInPast). a.Signature is set.
func SignAnnounce(id *protocol.Identity, a *SlotAnnounce, now time.Time) ([]byte, error) {
	a.Therapist = TherapistKeyOf(id.Compact())
	if err := a.checkTime(now, DefaultClockSkew); err != nil {
		return nil, err
	}
	for _, s := range a.Slots {
		if s.Start.Before(now.Truncate(time.Minute)) {
			return nil, fmt.Errorf("announce: slot %d starts %v, before now (%v): %w", s.ID, s.Start.UTC(), now.UTC(), ErrInPast)
		}
	}
	body, err := a.appendBody(nil)
	if err != nil {
		return nil, err
	}
	copy(a.Signature[:], id.Sign(labelAnnounce, body))
	return append(body, a.Signature[:]...), nil
}

// MarshalBinary encodes a signed announce (docs/fapp.md has the layout).
func (a *SlotAnnounce) MarshalBinary() ([]byte, error) {
	body, err := a.appendBody(nil)
	if err != nil {
		return nil, err
	}
	return append(body, a.Signature[:]...), nil
}

// ParseSlotAnnounce decodes an announce strictly, verifies its signature
// and checks it against now: not expired, not issued more than skew after
// now (DefaultClockSkew if skew is 0). Slot starts are checked against the
// issue time (no slot may start before the announce was signed); slots that
// started since are skipped by queries, not refused here, so a valid
// announce stays valid while it lives.
func ParseSlotAnnounce(b []byte, now time.Time, skew time.Duration) (*SlotAnnounce, error) {
	a, err := decodeAnnounce(b)
	if err != nil {
		return nil, err
	}
	if !a.Therapist.verify(labelAnnounce, b[:len(b)-protocol.SignatureSize], a.Signature[:]) {
		return nil, fmt.Errorf("announce of %v: %w", a.Therapist, ErrBadSignature)
	}
	if skew == 0 {
		skew = DefaultClockSkew
	}
	if err := a.checkTime(now, skew); err != nil {
		return nil, err
	}
	return a, nil
}

// checkTime checks the announce against the receiver's clock.
func (a *SlotAnnounce) checkTime(now time.Time, skew time.Duration) error {
	switch {
	case a.Issued.Sub(now) > skew:
		return fmt.Errorf("announce of %v: issued %v, more than %v after %v: %w", a.Therapist, a.Issued, skew, now, ErrFromFuture)
	case !now.Before(a.Expires):
		return fmt.Errorf("announce of %v: expired at %v: %w", a.Therapist, a.Expires, ErrExpired)
	}
	return nil
}

// Expired reports whether a has expired at now.
func (a *SlotAnnounce) Expired(now time.Time) bool { return !now.Before(a.Expires) }

// validate checks every rule of the format and the domain (not times
// relative to a clock, not the signature).
func (a *SlotAnnounce) validate() error {
	if !a.PLZ.Valid() {
		return fmt.Errorf("announce: PLZ %v: %w", a.PLZ, ErrInvalidPLZ)
	}
	if err := a.validateSets(); err != nil {
		return err
	}
	if len(a.Sprachen) > MaxSprachen {
		return fmt.Errorf("announce: %d languages, limit %d: %w", len(a.Sprachen), MaxSprachen, ErrTooLarge)
	}
	for i, l := range a.Sprachen {
		if !l.Valid() {
			return fmt.Errorf("announce: language %q: %w", l[:], ErrMalformed)
		}
		if i > 0 && string(l[:]) <= string(a.Sprachen[i-1][:]) {
			return fmt.Errorf("announce: languages not strictly ascending at %v: %w", l, ErrMalformed)
		}
	}
	if a.Geschlecht != 0 && !a.Geschlecht.Valid() {
		return fmt.Errorf("announce: Geschlecht %d: %w", a.Geschlecht, ErrMalformed)
	}
	if err := a.validateLifetime(); err != nil {
		return err
	}
	return a.validateSlots()
}

func (a *SlotAnnounce) validateSets() error {
	switch {
	case !a.Verfahren.valid():
		return fmt.Errorf("announce: Verfahren bits 0x%02x: %w", uint8(a.Verfahren), ErrMalformed)
	case !a.Kostentraeger.valid():
		return fmt.Errorf("announce: Kostentraeger bits 0x%02x: %w", uint8(a.Kostentraeger), ErrMalformed)
	case !a.Altersgruppen.valid():
		return fmt.Errorf("announce: Altersgruppen bits 0x%02x: %w", uint8(a.Altersgruppen), ErrMalformed)
	case a.Withdrawn:
		return nil
	case a.Verfahren.Empty(), a.Kostentraeger.Empty(), a.Altersgruppen.Empty():
		return fmt.Errorf("announce: Verfahren, Kostentraeger and Altersgruppen must not be empty: %w", ErrImpossible)
	}
	return nil
}

func (a *SlotAnnounce) validateLifetime() error {
	if _, err := unix32("announce: issued", a.Issued); err != nil {
		return err
	}
	if a.Issued.Nanosecond() != 0 {
		return fmt.Errorf("announce: issued %v not in whole seconds: %w", a.Issued, ErrMalformed)
	}
	life := a.Expires.Sub(a.Issued)
	if life <= 0 || life > MaxAnnounceLifetime || life%time.Minute != 0 {
		return fmt.Errorf("announce: lifetime %v: want whole minutes in (0, %v]: %w", life, MaxAnnounceLifetime, ErrMalformed)
	}
	return nil
}

func (a *SlotAnnounce) validateSlots() error {
	if a.Withdrawn && len(a.Slots) > 0 {
		return fmt.Errorf("announce: withdrawal with %d slots: %w", len(a.Slots), ErrImpossible)
	}
	if len(a.Slots) > MaxSlots {
		return fmt.Errorf("announce: %d slots, limit %d: %w", len(a.Slots), MaxSlots, ErrTooLarge)
	}
	for i, s := range a.Slots {
		if err := s.validate(a); err != nil {
			return fmt.Errorf("announce: slot %d: %w", s.ID, err)
		}
		for _, t := range a.Slots[:i] {
			if t.ID == s.ID {
				return fmt.Errorf("announce: slot ID %d twice: %w", s.ID, ErrMalformed)
			}
		}
	}
	return nil
}

// validate checks one slot within announce a.
func (s Slot) validate(a *SlotAnnounce) error {
	if err := s.validateEnums(); err != nil {
		return err
	}
	if !a.Verfahren.Has(s.Verfahren) {
		return fmt.Errorf("Verfahren %v not among the announce's %v: %w", s.Verfahren, a.Verfahren, ErrImpossible)
	}
	if err := s.validateCombination(); err != nil {
		return err
	}
	return s.validateTimes(a.Issued)
}

func (s Slot) validateEnums() error {
	switch {
	case !s.Terminart.Valid():
		return fmt.Errorf("Terminart %d: %w", s.Terminart, ErrMalformed)
	case !s.Verfahren.Valid():
		return fmt.Errorf("Verfahren %d: %w", s.Verfahren, ErrMalformed)
	case !s.Setting.Valid():
		return fmt.Errorf("Setting %d: %w", s.Setting, ErrMalformed)
	case !s.Modalitaet.Valid():
		return fmt.Errorf("Modalitaet %d: %w", s.Modalitaet, ErrMalformed)
	case !s.Voraussetzung.Valid():
		return fmt.Errorf("Voraussetzung %d: %w", s.Voraussetzung, ErrMalformed)
	case !s.Status.Valid():
		return fmt.Errorf("SlotStatus %d: %w", s.Status, ErrMalformed)
	case s.Dauer != 25 && s.Dauer != 50 && s.Dauer != 100:
		return fmt.Errorf("Dauer %d minutes: want 25, 50 or 100: %w", s.Dauer, ErrMalformed)
	}
	return nil
}

// validateCombination enforces the domain rules between a slot's fields.
func (s Slot) validateCombination() error {
	switch {
	case s.Setting == Mehrpersonen && s.Verfahren != Systemisch:
		return fmt.Errorf("MEHRPERSONEN with %v (systemic therapy only): %w", s.Verfahren, ErrImpossible)
	case s.Setting == Gruppe && (s.Plaetze == 0 || s.Plaetze > MaxGroupSeats):
		return fmt.Errorf("GRUPPE with %d seats, want 1..%d: %w", s.Plaetze, MaxGroupSeats, ErrImpossible)
	case s.Setting != Gruppe && s.Plaetze != 0:
		return fmt.Errorf("%v with %d seats (only GRUPPE has seats): %w", s.Setting, s.Plaetze, ErrImpossible)
	case s.Terminart.IsGroup() != (s.Setting == Gruppe):
		return fmt.Errorf("Terminart %v with Setting %v: %w", s.Terminart, s.Setting, ErrImpossible)
	case s.Terminart == Sprechstunde && s.Dauer == 100:
		return fmt.Errorf("SPRECHSTUNDE of 100 minutes (25-minute units, 50 at most): %w", ErrImpossible)
	case s.Woechentlich && !s.Terminart.IsWeeklyPlace():
		return fmt.Errorf("weekly %v (only therapy places and groups recur): %w", s.Terminart, ErrImpossible)
	case !s.Woechentlich && !s.Bis.IsZero():
		return fmt.Errorf("single slot with an end date %v: %w", s.Bis, ErrImpossible)
	}
	return nil
}

func (s Slot) validateTimes(issued time.Time) error {
	if _, err := unix32("start", s.Start); err != nil {
		return err
	}
	switch {
	case s.Start.Second() != 0 || s.Start.Nanosecond() != 0:
		return fmt.Errorf("start %v not in whole minutes: %w", s.Start, ErrMalformed)
	case s.Start.Before(issued.Truncate(time.Minute)):
		return fmt.Errorf("start %v before the announce was issued (%v): %w", s.Start.UTC(), issued.UTC(), ErrInPast)
	case s.Start.Sub(issued) > MaxSlotHorizon:
		return fmt.Errorf("start %v more than %v after issue: %w", s.Start.UTC(), MaxSlotHorizon, ErrImpossible)
	}
	if s.Woechentlich {
		if w := s.weeks(); w < 0 || w > MaxWeeks {
			return fmt.Errorf("weekly until %v: want 0..%d weeks after the start: %w", s.Bis.UTC(), MaxWeeks, ErrImpossible)
		}
	}
	return nil
}

// weeks returns the number of weekly occurrences after Start up to Bis (-1
// when Bis is before Start), at the same Berlin wall-clock time. A zero Bis
// means the place is offered for the first date only.
func (s Slot) weeks() int {
	if s.Bis.IsZero() {
		return 0
	}
	if s.Bis.Before(s.Start) {
		return -1
	}
	k := int(s.Bis.Sub(s.Start) / (7 * 24 * time.Hour))
	if k > MaxWeeks+1 {
		return k // out of range; the caller refuses it
	}
	for k > 0 && addBerlinWeeks(s.Start, k).After(s.Bis) {
		k--
	}
	for !addBerlinWeeks(s.Start, k+1).After(s.Bis) {
		k++
	}
	return k
}

// Occurrence returns the k-th start of the slot (k = 0 is Start); weekly
// slots recur at the same Europe/Berlin wall-clock time.
func (s Slot) Occurrence(k int) time.Time {
	if k == 0 {
		return s.Start
	}
	return addBerlinWeeks(s.Start, k)
}

// Occurrences returns how many starts the slot offers (1 for a single slot).
func (s Slot) Occurrences() int {
	if !s.Woechentlich {
		return 1
	}
	return max(s.weeks(), 0) + 1
}

// appendBody appends everything but the signature, after validating a.
func (a *SlotAnnounce) appendBody(b []byte) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	issued, _ := unix32("issued", a.Issued)
	flags := byte(a.Geschlecht) << flagGenderShift
	flags |= flagBit(a.Withdrawn, flagWithdrawn) | flagBit(a.Warteliste, flagWarteliste)
	flags |= flagBit(a.BarrierefreiZugang, flagBfZugang) | flagBit(a.BarrierefreiWC, flagBfWC)
	b = append(b, announceVersion, flags)
	b = append(b, a.Therapist[:]...)
	b = append(b, a.Profile[:]...)
	b = binary.BigEndian.AppendUint32(b, a.Sequence)
	b = binary.BigEndian.AppendUint32(b, issued)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Expires.Sub(a.Issued)/time.Minute))
	b = appendU24(b, uint32(a.PLZ))
	b = append(b, byte(a.Verfahren), byte(a.Kostentraeger), byte(a.Altersgruppen), byte(len(a.Sprachen)))
	for _, l := range a.Sprachen {
		b = append(b, l[:]...)
	}
	b = append(b, byte(len(a.Slots)))
	for _, s := range a.Slots {
		b = s.appendTo(b)
	}
	return b, nil
}

func flagBit(on bool, bit byte) byte {
	if on {
		return bit
	}
	return 0
}

// Slot bytes: ID u16 | b1 | b2 | seats u8 | start u32 | weeks u16, with
//
//	b1: bits 0-2 Terminart, 3-4 SlotStatus, 5-6 Setting, 7 weekly
//	b2: bits 0-1 Verfahren-1, 2 Modalitaet-1, 3-4 Voraussetzung,
//	    5-6 Dauer (1 = 25, 2 = 50, 3 = 100 minutes), 7 reserved (0)
func (s Slot) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, s.ID)
	b1 := byte(s.Terminart) | byte(s.Status)<<3 | byte(s.Setting)<<5 | flagBit(s.Woechentlich, 1<<7)
	b2 := byte(s.Verfahren-1) | byte(s.Modalitaet-1)<<2 | byte(s.Voraussetzung)<<3 | dauerCode(s.Dauer)<<5
	b = append(b, b1, b2, s.Plaetze)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Start.Unix()))
	return binary.BigEndian.AppendUint16(b, uint16(s.weeks()))
}

func dauerCode(d uint8) byte {
	switch d {
	case 25:
		return 1
	case 50:
		return 2
	}
	return 3
}

var dauerOfCode = [4]uint8{0, 25, 50, 100}

// decodeAnnounce decodes and validates the bytes (not the signature, not
// the time).
func decodeAnnounce(b []byte) (*SlotAnnounce, error) {
	if len(b) > maxAnnounceSize {
		return nil, fmt.Errorf("announce: %d bytes, limit %d: %w", len(b), maxAnnounceSize, ErrTooLarge)
	}
	r := newReader("announce", b)
	if v := r.u8("version"); r.err == nil && v != announceVersion {
		return nil, fmt.Errorf("announce: version %d: %w", v, ErrUnknownVersion)
	}
	a := &SlotAnnounce{}
	flags := r.u8("flags")
	if r.err == nil && flags&flagReservedMask != 0 {
		return nil, fmt.Errorf("announce: reserved flag bits 0x%02x: %w", flags, ErrMalformed)
	}
	a.Withdrawn, a.Warteliste = flags&flagWithdrawn != 0, flags&flagWarteliste != 0
	a.BarrierefreiZugang, a.BarrierefreiWC = flags&flagBfZugang != 0, flags&flagBfWC != 0
	a.Geschlecht = Geschlecht(flags >> flagGenderShift & 3)
	r.copyInto(a.Therapist[:], "therapist key")
	r.copyInto(a.Profile[:], "profile ref")
	a.Sequence = r.u32("sequence")
	a.Issued = r.time32("issued")
	a.Expires = a.Issued.Add(time.Duration(r.u16("lifetime")) * time.Minute)
	a.PLZ = PLZ(r.u24("PLZ"))
	a.Verfahren = VerfahrenSet(r.u8("Verfahren"))
	a.Kostentraeger = KostentraegerSet(r.u8("Kostentraeger"))
	a.Altersgruppen = AltersgruppeSet(r.u8("Altersgruppen"))
	if err := a.readLists(r); err != nil {
		return nil, err
	}
	r.copyInto(a.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// readLists reads the languages and the slots.
func (a *SlotAnnounce) readLists(r *reader) error {
	n := int(r.u8("language count"))
	if r.err == nil && n > MaxSprachen {
		return fmt.Errorf("announce: %d languages, limit %d: %w", n, MaxSprachen, ErrTooLarge)
	}
	for range n {
		var l Sprache
		r.copyInto(l[:], "language")
		a.Sprachen = append(a.Sprachen, l)
	}
	m := int(r.u8("slot count"))
	if r.err == nil && m > MaxSlots {
		return fmt.Errorf("announce: %d slots, limit %d: %w", m, MaxSlots, ErrTooLarge)
	}
	for range m {
		s, err := readSlot(r)
		if err != nil {
			return err
		}
		a.Slots = append(a.Slots, s)
	}
	return r.err
}

func readSlot(r *reader) (Slot, error) {
	s := Slot{ID: r.u16("slot ID")}
	b1, b2 := r.u8("slot byte 1"), r.u8("slot byte 2")
	s.Plaetze = r.u8("seats")
	s.Start = r.time32("start")
	weeks := int(r.u16("weeks"))
	if r.err != nil {
		return s, r.err
	}
	if b2&0x80 != 0 {
		return s, fmt.Errorf("announce: slot %d: reserved bit set: %w", s.ID, ErrMalformed)
	}
	s.Terminart, s.Status, s.Setting = Terminart(b1&7), SlotStatus(b1>>3&3), Setting(b1>>5&3)
	s.Woechentlich = b1&0x80 != 0
	s.Verfahren, s.Modalitaet = Verfahren(b2&3+1), Modalitaet(b2>>2&1+1)
	s.Voraussetzung, s.Dauer = Voraussetzung(b2>>3&3), dauerOfCode[b2>>5&3]
	switch {
	case weeks > MaxWeeks:
		return s, fmt.Errorf("announce: slot %d: %d weeks, limit %d: %w", s.ID, weeks, MaxWeeks, ErrImpossible)
	case weeks > 0 && !s.Woechentlich:
		return s, fmt.Errorf("announce: slot %d: weeks on a single slot: %w", s.ID, ErrImpossible)
	case weeks > 0:
		s.Bis = addBerlinWeeks(s.Start, weeks)
	}
	return s, nil
}

// Clone returns a deep copy of a.
func (a *SlotAnnounce) Clone() *SlotAnnounce {
	c := *a
	c.Sprachen = slices.Clone(a.Sprachen)
	c.Slots = slices.Clone(a.Slots)
	return &c
}
