package fapp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"meshd.dev/meshd/protocol"
)

// TherapistKey is a therapist's Ed25519 public key (the signing key of the
// therapist node's protocol identity). It names the therapist in announces,
// slot references and reservations.
type TherapistKey [protocol.SigningKeySize]byte

// String returns the 64-character lowercase hex form.
func (k TherapistKey) String() string { return hex.EncodeToString(k[:]) }

// ParseTherapistKey parses the 64-character hex form.
func ParseTherapistKey(s string) (TherapistKey, error) {
	var k TherapistKey
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("therapist key %q: want %d hex characters: %w", s, 2*len(k), ErrMalformed)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("therapist key %q: not hex: %w", s, ErrMalformed)
	}
	return k, nil
}

// MarshalText implements encoding.TextMarshaler.
func (k TherapistKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *TherapistKey) UnmarshalText(b []byte) error {
	v, err := ParseTherapistKey(string(b))
	*k = v
	return err
}

// TherapistKeyOf returns the therapist key of a protocol identity.
func TherapistKeyOf(c protocol.CompactIdentity) TherapistKey { return TherapistKey(c.SigningKey) }

// verify checks an Identity.Sign signature by k under label.
func (k TherapistKey) verify(label string, msg, sig []byte) bool {
	return protocol.CompactIdentity{SigningKey: k}.Verify(label, msg, sig)
}

// ProfileRefSize is the size of a ProfileRef.
const ProfileRefSize = 8

// ProfileRef names one version of a therapist's signed Profile: the first 8
// bytes of SHA-256("fapp/profile-ref/v1" || 0 || encoded profile). An
// announce carries it instead of the profile (name, focus areas, full
// public identity, credential), which is too large for a LoRa frame and
// rarely changes. 8 bytes suffice: the profile is signed by the announce's
// own key, so a colliding profile would have to be signed by the therapist.
type ProfileRef [ProfileRefSize]byte

// String returns the 16-character lowercase hex form.
func (r ProfileRef) String() string { return hex.EncodeToString(r[:]) }

// MarshalText implements encoding.TextMarshaler.
func (r ProfileRef) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *ProfileRef) UnmarshalText(b []byte) error {
	if len(b) != 2*ProfileRefSize {
		return fmt.Errorf("profile ref %q: want %d hex characters: %w", b, 2*ProfileRefSize, ErrMalformed)
	}
	if _, err := hex.Decode(r[:], b); err != nil {
		return fmt.Errorf("profile ref %q: not hex: %w", b, ErrMalformed)
	}
	return nil
}

// ProfileRefOf computes the ProfileRef of an encoded profile.
func ProfileRefOf(encoded []byte) ProfileRef {
	h := sha256.New()
	h.Write([]byte("fapp/profile-ref/v1"))
	h.Write([]byte{0})
	h.Write(encoded)
	var r ProfileRef
	copy(r[:], h.Sum(nil))
	return r
}

// SlotRef names one slot in the mesh: the therapist and the slot's ID in
// that therapist's announces.
type SlotRef struct {
	Therapist TherapistKey
	Slot      uint16
}

// String returns "<therapist hex>/<slot ID>".
func (s SlotRef) String() string { return fmt.Sprintf("%v/%d", s.Therapist, s.Slot) }

// Slot is one free appointment or place a therapist offers.
type Slot struct {
	// ID identifies the slot among the therapist's slots; the therapist
	// keeps it stable across announces (status changes, re-announces).
	ID            uint16
	Terminart     Terminart
	Verfahren     Verfahren // must be in the announce's Verfahren
	Setting       Setting
	Modalitaet    Modalitaet
	Voraussetzung Voraussetzung
	// Start is the first occurrence, in whole minutes (UTC on the wire;
	// shown in Europe/Berlin).
	Start time.Time
	// Dauer is the duration in minutes: 25, 50 or 100.
	Dauer uint8
	// Woechentlich marks a weekly recurring place (therapy places, groups):
	// it recurs at the same Europe/Berlin wall-clock time until Bis.
	Woechentlich bool
	// Bis is the last occurrence of a weekly slot (zero for a single one).
	Bis time.Time
	// Plaetze is the number of free seats of a group (1..14), 0 otherwise.
	Plaetze uint8
	Status  SlotStatus
}

// Ref returns the slot's mesh-wide name under therapist k.
func (s Slot) Ref(k TherapistKey) SlotRef { return SlotRef{Therapist: k, Slot: s.ID} }

// SlotAnnounce is what a therapist publishes into the region of the
// practice: who (by key and profile reference), where (PLZ), the filterable
// facts, and the slots. It is signed by the therapist's protocol identity; a
// higher Sequence replaces an older announce; it expires at Expires. An
// announce with Withdrawn set and no slots withdraws the therapist's offer.
type SlotAnnounce struct {
	Therapist     TherapistKey
	Profile       ProfileRef
	Sequence      uint32
	Issued        time.Time // whole seconds
	Expires       time.Time // whole minutes after Issued, at most MaxAnnounceLifetime
	PLZ           PLZ       // the practice's PLZ (never a street address)
	Verfahren     VerfahrenSet
	Kostentraeger KostentraegerSet
	Altersgruppen AltersgruppeSet
	Sprachen      []Sprache  // at most MaxSprachen
	Geschlecht    Geschlecht // 0 when not stated
	// BarrierefreiZugang and BarrierefreiWC: barrier-free entrance and toilet.
	BarrierefreiZugang bool
	BarrierefreiWC     bool
	// Warteliste: the waiting list is open.
	Warteliste bool
	Withdrawn  bool
	Slots      []Slot // at most MaxSlots; none when Withdrawn
	Signature  [protocol.SignatureSize]byte
}

// Region returns the announce's PLZ region.
func (a *SlotAnnounce) Region() Region { return a.PLZ.Region() }

// Profile is the large, rarely changing part of a therapist's offer, signed
// by the therapist and named in announces by its ProfileRef. It travels as
// its own message (broadcast in the region after a change and on request,
// see docs/fapp.md) and is cached by every node that follows the region.
type Profile struct {
	// Identity is the therapist's full public identity: its signing key is
	// the announce key, its KEM key is what reservations are sealed to.
	Identity *protocol.PublicIdentity
	Sequence uint32    // a higher one replaces the cached profile
	Issued   time.Time // whole seconds
	Name     string    // display name, at most MaxNameLen bytes of UTF-8
	// Schwerpunkte are coarse focus areas (e.g. "Angst", "Trauma"), at most
	// MaxSchwerpunkte of at most MaxSchwerpunktLen bytes each.
	Schwerpunkte []string
	// Credential binds the identity's keys to a profession and registry ID.
	Credential Credential
	Signature  [protocol.SignatureSize]byte
}

// Therapist returns the profile's therapist key.
func (p *Profile) Therapist() TherapistKey { return TherapistKeyOf(p.Identity.Compact()) }

// CompactIdentityString returns the 128-character hex form of c (Ed25519
// key, then the hash of the X-Wing key): what a therapist hands an issuer to
// be credentialed, since a credential binds both keys.
func CompactIdentityString(c protocol.CompactIdentity) string {
	return hex.EncodeToString(c.SigningKey[:]) + hex.EncodeToString(c.KEMKeyHash[:])
}

// ParseCompactIdentity parses the form CompactIdentityString returns.
func ParseCompactIdentity(s string) (protocol.CompactIdentity, error) {
	var c protocol.CompactIdentity
	if len(s) != 2*protocol.CompactIdentitySize {
		return c, fmt.Errorf("compact identity %q: want %d hex characters: %w", s, 2*protocol.CompactIdentitySize, ErrMalformed)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("compact identity %q: not hex: %w", s, ErrMalformed)
	}
	copy(c.SigningKey[:], b)
	copy(c.KEMKeyHash[:], b[protocol.SigningKeySize:])
	return c, nil
}
