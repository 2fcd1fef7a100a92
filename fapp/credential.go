package fapp

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Credential sizes and limits.
const (
	// MaxRegistryIDLen bounds a credential's registry ID (a Telematik-ID
	// is at most 128 characters in theory; the ones in use are ~20).
	MaxRegistryIDLen = 64
	// MaxRevoked bounds the serials of one revocation list.
	MaxRevoked = 100_000
	// IssuerKeyIDSize is the size of an IssuerKeyID.
	IssuerKeyIDSize = 8

	credentialVersion = 1
	revocationVersion = 1
	issuerFileVersion = 1
	issuerFileSize    = 1 + ed25519.SeedSize + 4
	maxCredentialSize = 1 + 8 + protocol.CompactIdentitySize + 1 + 1 + MaxRegistryIDLen + 4 + 4 + IssuerKeyIDSize + protocol.SignatureSize
	maxRevocationSize = 1 + IssuerKeyIDSize + 4 + 4 + 4 + 8*MaxRevoked + protocol.SignatureSize
)

// Domain-separation labels of issuer signatures and hashes.
const (
	labelCredential = "fapp/credential/v1"
	labelRevocation = "fapp/revocation/v1"
	labelIssuerID   = "fapp/issuer-id/v1"
)

// IssuerKey is an issuer's Ed25519 public key: what a node operator
// configures as trusted (a chamber, a KV, a community registry).
type IssuerKey [ed25519.PublicKeySize]byte

// ID returns the key's 8-byte ID: the first 8 bytes of
// SHA-256("fapp/issuer-id/v1" || 0 || key). Credentials name their issuer by it.
func (k IssuerKey) ID() IssuerKeyID {
	h := sha256.New()
	h.Write([]byte(labelIssuerID))
	h.Write([]byte{0})
	h.Write(k[:])
	var id IssuerKeyID
	copy(id[:], h.Sum(nil))
	return id
}

// String returns the 64-character lowercase hex form (what configuration holds).
func (k IssuerKey) String() string { return hex.EncodeToString(k[:]) }

// MarshalText implements encoding.TextMarshaler.
func (k IssuerKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *IssuerKey) UnmarshalText(b []byte) error {
	v, err := ParseIssuerKey(string(b))
	*k = v
	return err
}

// ParseIssuerKey parses the 64-character hex form of an issuer key.
func ParseIssuerKey(s string) (IssuerKey, error) {
	var k IssuerKey
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("issuer key %q: want %d hex characters: %w", s, 2*len(k), ErrMalformed)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("issuer key %q: not hex: %w", s, ErrMalformed)
	}
	return k, nil
}

func (k IssuerKey) verify(label string, msg, sig []byte) bool {
	return ed25519.Verify(ed25519.PublicKey(k[:]), labelled(label, msg), sig)
}

// IssuerKeyID names an issuer key in credentials and revocation lists.
type IssuerKeyID [IssuerKeyIDSize]byte

// String returns the 16-character lowercase hex form.
func (id IssuerKeyID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler.
func (id IssuerKeyID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// Credential is a license statement: the issuer vouches that the holder of
// these keys is of this profession with this registry ID, from ValidFrom to
// ValidTo. It replaces a hash of a license number, which proves nothing and
// hides nothing (licensed therapists are listed publicly anyway).
type Credential struct {
	// Serial is chosen by the issuer, unique per issuer; revocation lists
	// name credentials by it.
	Serial uint64
	// Therapist binds both keys: the signing key (announces, responses)
	// and, by its hash, the KEM key reservations are sealed to.
	Therapist    protocol.CompactIdentity
	Berufsgruppe Berufsgruppe
	RegistryID   string    // e.g. a Telematik-ID or LANR, printable text
	ValidFrom    time.Time // whole seconds
	ValidTo      time.Time // whole seconds
	Issuer       IssuerKeyID
	Signature    [protocol.SignatureSize]byte
}

// TherapistKey returns the credential's therapist signing key.
func (c *Credential) TherapistKey() TherapistKey { return TherapistKeyOf(c.Therapist) }

// appendStatement appends every field but the signature: what the issuer signs.
func (c *Credential) appendStatement(b []byte) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	from, _ := unix32("valid_from", c.ValidFrom)
	to, _ := unix32("valid_to", c.ValidTo)
	b = append(b, credentialVersion)
	b = binary.BigEndian.AppendUint64(b, c.Serial)
	b = append(b, c.Therapist.SigningKey[:]...)
	b = append(b, c.Therapist.KEMKeyHash[:]...)
	b = append(b, byte(c.Berufsgruppe))
	b = appendStr(b, c.RegistryID)
	b = binary.BigEndian.AppendUint32(b, from)
	b = binary.BigEndian.AppendUint32(b, to)
	return append(b, c.Issuer[:]...), nil
}

// check validates the fields' values (not the signature).
func (c *Credential) check() error {
	if !c.Berufsgruppe.Valid() {
		return fmt.Errorf("credential: Berufsgruppe %d: %w", c.Berufsgruppe, ErrMalformed)
	}
	if c.RegistryID == "" {
		return fmt.Errorf("credential: empty registry ID: %w", ErrMalformed)
	}
	if err := checkString("credential: registry ID", c.RegistryID, MaxRegistryIDLen); err != nil {
		return err
	}
	from, err := unix32("credential: valid_from", c.ValidFrom)
	if err != nil {
		return err
	}
	to, err := unix32("credential: valid_to", c.ValidTo)
	if err != nil {
		return err
	}
	if to <= from {
		return fmt.Errorf("credential: valid_to %v not after valid_from %v: %w", c.ValidTo, c.ValidFrom, ErrImpossible)
	}
	return nil
}

// AppendBinary appends the encoded credential to b:
//
//	version 0x01 | serial u64 | signing key 32 | KEM key hash 32 |
//	Berufsgruppe u8 | registry ID (u8 length, text) | valid_from u32 |
//	valid_to u32 | issuer key ID 8 | Ed25519 signature 64
func (c *Credential) AppendBinary(b []byte) ([]byte, error) {
	b, err := c.appendStatement(b)
	if err != nil {
		return nil, err
	}
	return append(b, c.Signature[:]...), nil
}

// MarshalBinary encodes the credential (see AppendBinary).
func (c *Credential) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// ParseCredential decodes a credential strictly. It does not verify the
// signature or the validity period: that needs the trusted issuer keys and
// the time (TrustStore.Verify).
func ParseCredential(b []byte) (*Credential, error) {
	if len(b) > maxCredentialSize {
		return nil, fmt.Errorf("credential: %d bytes, limit %d: %w", len(b), maxCredentialSize, ErrTooLarge)
	}
	r := newReader("credential", b)
	c, err := readCredential(r)
	if err != nil {
		return nil, err
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return c, nil
}

func readCredential(r *reader) (*Credential, error) {
	if v := r.u8("version"); r.err == nil && v != credentialVersion {
		return nil, fmt.Errorf("credential: version %d: %w", v, ErrUnknownVersion)
	}
	c := &Credential{Serial: r.u64("serial")}
	r.copyInto(c.Therapist.SigningKey[:], "signing key")
	r.copyInto(c.Therapist.KEMKeyHash[:], "KEM key hash")
	c.Berufsgruppe = Berufsgruppe(r.u8("Berufsgruppe"))
	c.RegistryID = r.str("registry ID", MaxRegistryIDLen)
	c.ValidFrom = r.time32("valid_from")
	c.ValidTo = r.time32("valid_to")
	r.copyInto(c.Issuer[:], "issuer key ID")
	r.copyInto(c.Signature[:], "signature")
	if r.err != nil {
		return nil, r.err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Issuer holds an issuer's private key: a chamber, a KV or a community
// registry that vouches for therapists. Treat it as secret.
type Issuer struct {
	seed [ed25519.SeedSize]byte
	priv ed25519.PrivateKey
	pub  IssuerKey
}

// NewIssuer creates an issuer key from 32 bytes of rand (crypto/rand in
// production, a seeded reader in tests).
func NewIssuer(rand io.Reader) (*Issuer, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("new issuer: reading randomness: %w", err)
	}
	return issuerFromSeed(seed), nil
}

func issuerFromSeed(seed [ed25519.SeedSize]byte) *Issuer {
	is := &Issuer{seed: seed, priv: ed25519.NewKeyFromSeed(seed[:])}
	copy(is.pub[:], is.priv.Public().(ed25519.PublicKey))
	return is
}

// PublicKey returns the key nodes configure as trusted.
func (is *Issuer) PublicKey() IssuerKey { return is.pub }

// MarshalBinary encodes the issuer's private key for a key file (37 bytes:
// version 0x01, Ed25519 seed, first 4 bytes of SHA-256 of the preceding
// bytes as a checksum). Store it with mode 0600.
func (is *Issuer) MarshalBinary() ([]byte, error) {
	b := append([]byte{issuerFileVersion}, is.seed[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:4]...), nil
}

// ParseIssuer decodes an issuer key file written by MarshalBinary.
func ParseIssuer(b []byte) (*Issuer, error) {
	if len(b) > issuerFileSize {
		return nil, fmt.Errorf("issuer key: %d bytes, want %d: %w", len(b), issuerFileSize, ErrTooLarge)
	}
	r := newReader("issuer key", b)
	v := r.u8("version")
	var seed [ed25519.SeedSize]byte
	r.copyInto(seed[:], "seed")
	check := r.take(4, "checksum")
	if err := r.done(); err != nil {
		return nil, err
	}
	if v != issuerFileVersion {
		return nil, fmt.Errorf("issuer key: version %d: %w", v, ErrUnknownVersion)
	}
	sum := sha256.Sum256(b[:issuerFileSize-4])
	if subtle.ConstantTimeCompare(sum[:4], check) != 1 {
		return nil, fmt.Errorf("issuer key: checksum mismatch (damaged key file?): %w", ErrMalformed)
	}
	return issuerFromSeed(seed), nil
}

// Issue signs a credential for c's therapist keys, profession, registry ID
// and validity (c.Issuer and c.Signature are set here; the rest is taken as
// given). The issuer chooses c.Serial, unique among its credentials.
func (is *Issuer) Issue(c Credential) (*Credential, error) {
	c.Issuer = is.pub.ID()
	stmt, err := c.appendStatement(nil)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	copy(c.Signature[:], ed25519.Sign(is.priv, labelled(labelCredential, stmt)))
	return &c, nil
}

// Revocation is an issuer's signed list of revoked credential serials. A
// list with a higher Sequence replaces the previous one (lists are complete,
// not deltas, so a node that missed one catches up with the next).
type Revocation struct {
	Issuer   IssuerKeyID
	Sequence uint32
	Issued   time.Time // whole seconds
	Serials  []uint64  // strictly ascending, at most MaxRevoked
	// Signature by the issuer over every preceding field.
	Signature [protocol.SignatureSize]byte
}

// Revoke signs a revocation list with sequence seq, issued at now, revoking
// serials (duplicates removed, sorted). seq must exceed the issuer's previous
// list's, which the caller keeps.
func (is *Issuer) Revoke(seq uint32, now time.Time, serials []uint64) (*Revocation, error) {
	s := slices.Clone(serials)
	slices.Sort(s)
	r := &Revocation{Issuer: is.pub.ID(), Sequence: seq, Issued: now.Truncate(time.Second).UTC(), Serials: slices.Compact(s)}
	body, err := r.appendBody(nil)
	if err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	copy(r.Signature[:], ed25519.Sign(is.priv, labelled(labelRevocation, body)))
	return r, nil
}

// Revoked reports whether serial is on the list.
func (r *Revocation) Revoked(serial uint64) bool {
	_, found := slices.BinarySearch(r.Serials, serial)
	return found
}

func (r *Revocation) appendBody(b []byte) ([]byte, error) {
	if len(r.Serials) > MaxRevoked {
		return nil, fmt.Errorf("revocation: %d serials, limit %d: %w", len(r.Serials), MaxRevoked, ErrTooLarge)
	}
	for i := 1; i < len(r.Serials); i++ {
		if r.Serials[i] <= r.Serials[i-1] {
			return nil, fmt.Errorf("revocation: serials not strictly ascending at %d: %w", i, ErrMalformed)
		}
	}
	issued, err := unix32("revocation: issued", r.Issued)
	if err != nil {
		return nil, err
	}
	b = append(b, revocationVersion)
	b = append(b, r.Issuer[:]...)
	b = binary.BigEndian.AppendUint32(b, r.Sequence)
	b = binary.BigEndian.AppendUint32(b, issued)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Serials)))
	for _, s := range r.Serials {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b, nil
}

// MarshalBinary encodes the list:
//
//	version 0x01 | issuer key ID 8 | sequence u32 | issued u32 |
//	count u32 | serials u64 x count (ascending) | Ed25519 signature 64
func (r *Revocation) MarshalBinary() ([]byte, error) {
	b, err := r.appendBody(nil)
	if err != nil {
		return nil, err
	}
	return append(b, r.Signature[:]...), nil
}

// ParseRevocation decodes a revocation list strictly. The signature is
// checked by TrustStore.ApplyRevocation, which knows the issuer keys.
func ParseRevocation(b []byte) (*Revocation, error) {
	if len(b) > maxRevocationSize {
		return nil, fmt.Errorf("revocation: %d bytes, limit %d: %w", len(b), maxRevocationSize, ErrTooLarge)
	}
	rd := newReader("revocation", b)
	if v := rd.u8("version"); rd.err == nil && v != revocationVersion {
		return nil, fmt.Errorf("revocation: version %d: %w", v, ErrUnknownVersion)
	}
	r := &Revocation{}
	rd.copyInto(r.Issuer[:], "issuer key ID")
	r.Sequence = rd.u32("sequence")
	r.Issued = rd.time32("issued")
	n := rd.u32("count")
	if rd.err == nil && (n > MaxRevoked || int(n)*8 > rd.remaining()) {
		return nil, fmt.Errorf("revocation: count %d for %d bytes (limit %d): %w", n, rd.remaining(), MaxRevoked, ErrTruncated)
	}
	if rd.err == nil {
		r.Serials = make([]uint64, n)
	}
	for i := range r.Serials {
		r.Serials[i] = rd.u64("serial")
		if i > 0 && rd.err == nil && r.Serials[i] <= r.Serials[i-1] {
			return nil, fmt.Errorf("revocation: serials not strictly ascending at %d: %w", i, ErrMalformed)
		}
	}
	rd.copyInto(r.Signature[:], "signature")
	if err := rd.done(); err != nil {
		return nil, err
	}
	return r, nil
}

// TrustStore holds the issuer keys the node operator trusts and the newest
// revocation list of each. It is not safe for concurrent use.
type TrustStore struct {
	issuers map[IssuerKeyID]IssuerKey
	revoked map[IssuerKeyID]*Revocation
}

// NewTrustStore returns a store trusting keys.
func NewTrustStore(keys ...IssuerKey) *TrustStore {
	t := &TrustStore{issuers: map[IssuerKeyID]IssuerKey{}, revoked: map[IssuerKeyID]*Revocation{}}
	for _, k := range keys {
		t.Trust(k)
	}
	return t
}

// Trust adds an issuer key.
func (t *TrustStore) Trust(k IssuerKey) { t.issuers[k.ID()] = k }

// Issuers returns the trusted keys, sorted.
func (t *TrustStore) Issuers() []IssuerKey {
	out := make([]IssuerKey, 0, len(t.issuers))
	for _, k := range t.issuers {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b IssuerKey) int { return slices.Compare(a[:], b[:]) })
	return out
}

// Revocation returns the newest revocation list of issuer id, or nil.
func (t *TrustStore) Revocation(id IssuerKeyID) *Revocation { return t.revoked[id] }

// ApplyRevocation installs a revocation list after checking that its
// issuer is trusted, its signature verifies and its sequence is higher than
// the list held (ErrStale otherwise, so an old list cannot un-revoke).
func (t *TrustStore) ApplyRevocation(r *Revocation) error {
	k, ok := t.issuers[r.Issuer]
	if !ok {
		return fmt.Errorf("revocation by %v: %w", r.Issuer, ErrUntrustedIssuer)
	}
	body, err := r.appendBody(nil)
	if err != nil {
		return err
	}
	if !k.verify(labelRevocation, body, r.Signature[:]) {
		return fmt.Errorf("revocation by %v: %w", r.Issuer, ErrBadSignature)
	}
	if old := t.revoked[r.Issuer]; old != nil && r.Sequence <= old.Sequence {
		return fmt.Errorf("revocation by %v: sequence %d, have %d: %w", r.Issuer, r.Sequence, old.Sequence, ErrStale)
	}
	t.revoked[r.Issuer] = r
	return nil
}

// Verify checks a credential at now: a trusted issuer, a valid signature,
// within its validity period and not revoked.
func (t *TrustStore) Verify(c *Credential, now time.Time) error {
	k, ok := t.issuers[c.Issuer]
	if !ok {
		return fmt.Errorf("credential %d by %v: %w", c.Serial, c.Issuer, ErrUntrustedIssuer)
	}
	stmt, err := c.appendStatement(nil)
	if err != nil {
		return err
	}
	if !k.verify(labelCredential, stmt, c.Signature[:]) {
		return fmt.Errorf("credential %d by %v: %w", c.Serial, c.Issuer, ErrBadSignature)
	}
	return t.status(c, now)
}

// status checks what of a credential changes without new signatures: its
// validity period at now and the issuer's revocation list. The index
// re-checks only this at every Prune, so a node holding many profiles
// does not verify every signature again every time (Verify checked it).
func (t *TrustStore) status(c *Credential, now time.Time) error {
	switch {
	case now.Before(c.ValidFrom):
		return fmt.Errorf("credential %d: valid from %v: %w", c.Serial, c.ValidFrom, ErrNotYetValid)
	case !now.Before(c.ValidTo):
		return fmt.Errorf("credential %d: valid to %v: %w", c.Serial, c.ValidTo, ErrExpired)
	}
	if r := t.revoked[c.Issuer]; r != nil && r.Revoked(c.Serial) {
		return fmt.Errorf("credential %d by %v (list %d): %w", c.Serial, c.Issuer, r.Sequence, ErrRevoked)
	}
	return nil
}

// labelled returns label || 0 || msg, the bytes issuers sign.
func labelled(label string, msg []byte) []byte {
	b := make([]byte, 0, len(label)+1+len(msg))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, msg...)
}
