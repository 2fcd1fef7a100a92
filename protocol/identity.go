package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
)

// Sizes of identity material.
const (
	AddressSize           = 16
	SigningKeySize        = ed25519.PublicKeySize // 32
	SignatureSize         = ed25519.SignatureSize // 64
	KEMPublicKeySize      = xwing.PublicKeySize   // 1216
	KEMCiphertextSize     = xwing.CiphertextSize  // 1120
	KEMKeyHashSize        = sha256.Size           // 32
	CompactIdentitySize   = SigningKeySize + KEMKeyHashSize
	PublicIdentitySize    = 1 + SigningKeySize + KEMPublicKeySize
	PrivateIdentitySize   = 1 + 32 + 32 + 4
	identityFormatVersion = 1
)

// Domain-separation labels. Every hash and signature in meshd is prefixed by
// a label naming its purpose and version, so bytes signed for one purpose can
// never be replayed as another.
const (
	labelAddress     = "meshd/address/v1"
	labelKEMKey      = "meshd/kem-key/v1"
	labelFingerprint = "meshd/fingerprint/v1"
)

// Address is a node's 16-byte mesh address: the first 16 bytes of
// SHA-256(label || Ed25519 public key || SHA-256(label || X-Wing public key)).
// It is written for people as 32 lowercase hex characters.
type Address [AddressSize]byte

// String returns the 32-character lowercase hex form.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// IsZero reports whether a is the all-zero address.
func (a Address) IsZero() bool { return a == Address{} }

// MarshalText implements encoding.TextMarshaler.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Address) UnmarshalText(b []byte) error {
	v, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAddress parses the 32-character hex form of an address. Upper-case
// hex is accepted; anything else is an error.
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 2*AddressSize {
		return a, fmt.Errorf("address %q: want %d hex characters, got %d: %w", s, 2*AddressSize, len(s), ErrMalformed)
	}
	if _, err := hex.Decode(a[:], []byte(s)); err != nil {
		return a, fmt.Errorf("address %q: not hex: %w", s, ErrMalformed)
	}
	return a, nil
}

// CompactIdentity is the smallest public form of an identity that still
// binds its address: the Ed25519 public key and the hash of the X-Wing KEM
// public key. It suffices to verify signatures and the address; sealing to a
// node needs its full PublicIdentity.
//
//	0                32                64
//	+----------------+-----------------+
//	| Ed25519 public | SHA-256 KEM key |
//	+----------------+-----------------+
type CompactIdentity struct {
	SigningKey [SigningKeySize]byte
	KEMKeyHash [KEMKeyHashSize]byte
}

// Address derives the mesh address bound to these keys.
func (c CompactIdentity) Address() Address {
	h := sha256.New()
	h.Write([]byte(labelAddress))
	h.Write(c.SigningKey[:])
	h.Write(c.KEMKeyHash[:])
	var a Address
	copy(a[:], h.Sum(nil))
	return a
}

// verify checks an Ed25519 signature by this identity over label || msg.
func (c CompactIdentity) verify(label string, msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(c.SigningKey[:]), labelled(label, msg), sig)
}

// Verify checks a signature made by Identity.Sign with the same label.
func (c CompactIdentity) Verify(label string, msg, sig []byte) bool {
	return c.verify(labelExternal+label, msg, sig)
}

// labelExternal prefixes the labels of Identity.Sign.
const labelExternal = "meshd-ext/"

func (c CompactIdentity) appendTo(b []byte) []byte {
	b = append(b, c.SigningKey[:]...)
	return append(b, c.KEMKeyHash[:]...)
}

func (r *reader) compactIdentity(field string) CompactIdentity {
	var c CompactIdentity
	r.copyInto(c.SigningKey[:], field+" signing key")
	r.copyInto(c.KEMKeyHash[:], field+" KEM key hash")
	return c
}

// Fingerprint returns 30 decimal digits in six groups of five that identify
// these keys. Two people compare fingerprints (or a SafetyNumber) out of band
// to rule out a man in the middle. The derivation iterates SHA-512 5,200
// times, as Signal's safety numbers do, to make finding a second key with the
// same digits expensive.
func (c CompactIdentity) Fingerprint() string {
	return formatDigits(c.fingerprintDigits())
}

func (c CompactIdentity) fingerprintDigits() []byte {
	input := c.appendTo(nil)
	h := sha512.New()
	h.Write([]byte(labelFingerprint))
	h.Write(input)
	sum := h.Sum(nil)
	for i := 1; i < 5200; i++ {
		h.Reset()
		h.Write(sum)
		h.Write(input)
		sum = h.Sum(sum[:0])
	}
	digits := make([]byte, 0, 30)
	for i := 0; i < 6; i++ {
		chunk := sum[i*5 : i*5+5]
		v := uint64(chunk[0])<<32 | uint64(chunk[1])<<24 | uint64(chunk[2])<<16 | uint64(chunk[3])<<8 | uint64(chunk[4])
		digits = fmt.Appendf(digits, "%05d", v%100000)
	}
	return digits
}

func formatDigits(d []byte) string {
	var sb strings.Builder
	for i := 0; i < len(d); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.Write(d[i:min(i+5, len(d))])
	}
	return sb.String()
}

// SafetyNumber returns the 60-digit number two people compare to verify each
// other: both fingerprints, the smaller first, so both sides see the same
// digits.
func SafetyNumber(a, b CompactIdentity) string {
	da, db := a.fingerprintDigits(), b.fingerprintDigits()
	if bytes.Compare(da, db) > 0 {
		da, db = db, da
	}
	return formatDigits(append(da, db...))
}

// PublicIdentity is the full public identity of a node: its Ed25519 signing
// key and its X-Wing (X25519 + ML-KEM-768) KEM key.
//
//	0     1                 33                                1249
//	+-----+-----------------+---------------------------------+
//	| 0x01| Ed25519 public  | X-Wing public key (1216 bytes)  |
//	+-----+-----------------+---------------------------------+
type PublicIdentity struct {
	compact  CompactIdentity
	kemBytes [KEMPublicKeySize]byte
	kem      *xwing.PublicKey
	addr     Address
}

func kemKeyHash(kemPub []byte) [KEMKeyHashSize]byte {
	h := sha256.New()
	h.Write([]byte(labelKEMKey))
	h.Write(kemPub)
	var out [KEMKeyHashSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

func newPublicIdentity(sig []byte, kemPub []byte) (*PublicIdentity, error) {
	return newPublicIdentityKey(sig, kemPub, nil)
}

// newPublicIdentityKey is newPublicIdentity with the KEM key already
// decoded when pk is not nil (a key pair just derived: its public key is
// what decoding its packed form gives, TestDerivedKEMKeyIsUnpacked, and
// decoding would derive the ML-KEM matrix a second time).
func newPublicIdentityKey(sig []byte, kemPub []byte, pk *xwing.PublicKey) (*PublicIdentity, error) {
	if len(kemPub) != KEMPublicKeySize {
		return nil, fmt.Errorf("public identity: KEM key: %w", ErrMalformed)
	}
	// An X-Wing public key ends with its X25519 key.
	if degenerateKey(sig) || smallOrderEd25519(sig) || degenerateKey(kemPub[KEMPublicKeySize-32:]) {
		return nil, fmt.Errorf("public identity: degenerate (all-zero or identity) Ed25519 or X25519 key: %w", ErrMalformed)
	}
	if pk == nil {
		pk = new(xwing.PublicKey)
		if err := pk.Unpack(kemPub); err != nil {
			return nil, fmt.Errorf("public identity: KEM key rejected (%v): %w", err, ErrMalformed)
		}
	}
	p := &PublicIdentity{kem: pk}
	copy(p.compact.SigningKey[:], sig)
	copy(p.kemBytes[:], kemPub)
	p.compact.KEMKeyHash = kemKeyHash(kemPub)
	p.addr = p.compact.Address()
	return p, nil
}

// degenerateKey reports a 32-byte curve key that is all zeros or the
// encoding of 1 (0x01, then zeros): for Ed25519 the identity and a
// small-order point, for X25519 the u-coordinates whose shared secret is
// fixed whatever the other side's key. No real key is either.
func degenerateKey(k []byte) bool {
	if len(k) != 32 {
		return true
	}
	for _, b := range k[1:] {
		if b != 0 {
			return false
		}
	}
	return k[0] == 0 || k[0] == 1
}

// ed25519SmallOrder are the encodings of the eight Ed25519 points of
// small order, canonical and not (crypto/ed25519 accepts non-canonical y):
// with such a key, signatures nobody made verify for a share of all
// messages, so anyone could sign as the identity.
var ed25519SmallOrder = func() [][]byte {
	var out [][]byte
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // order 1
		"0100000000000000000000000000000000000000000000000000000000000080",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"0000000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p (0)
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p+1 (1)
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	} {
		b, err := hex.DecodeString(h)
		if err != nil {
			panic(err) // a constant above
		}
		out = append(out, b)
	}
	return out
}()

// smallOrderEd25519 reports an Ed25519 key of small order.
func smallOrderEd25519(k []byte) bool {
	for _, s := range ed25519SmallOrder {
		if bytes.Equal(k, s) {
			return true
		}
	}
	return false
}

// Address returns the node's mesh address.
func (p *PublicIdentity) Address() Address { return p.addr }

// Compact returns the compact form (signing key and KEM key hash).
func (p *PublicIdentity) Compact() CompactIdentity { return p.compact }

// KEMPublicKey returns a copy of the encoded X-Wing public key.
func (p *PublicIdentity) KEMPublicKey() []byte { return bytes.Clone(p.kemBytes[:]) }

// Fingerprint is Compact().Fingerprint().
func (p *PublicIdentity) Fingerprint() string { return p.compact.Fingerprint() }

// Equal reports whether p and q hold the same keys.
func (p *PublicIdentity) Equal(q *PublicIdentity) bool {
	return p.compact == q.compact && p.kemBytes == q.kemBytes
}

// AppendBinary appends the encoded public identity to b.
func (p *PublicIdentity) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, identityFormatVersion)
	b = append(b, p.compact.SigningKey[:]...)
	return append(b, p.kemBytes[:]...), nil
}

// MarshalBinary encodes the public identity (PublicIdentitySize bytes).
func (p *PublicIdentity) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, PublicIdentitySize))
}

// ParsePublicIdentity decodes a public identity and validates the KEM key.
func ParsePublicIdentity(b []byte) (*PublicIdentity, error) {
	if len(b) > PublicIdentitySize {
		return nil, fmt.Errorf("public identity: %d bytes, want %d: %w", len(b), PublicIdentitySize, ErrTooLarge)
	}
	r := newReader("public identity", b)
	if v := r.u8("version"); r.err == nil && v != identityFormatVersion {
		return nil, fmt.Errorf("public identity: version %d: %w", v, ErrUnknownKind)
	}
	sig := r.bytes(SigningKeySize, "signing key")
	kemPub := r.bytes(KEMPublicKeySize, "KEM key")
	if err := r.done(); err != nil {
		return nil, err
	}
	return newPublicIdentity(sig, kemPub)
}

// Identity is a node's private identity: an Ed25519 signing key and an
// X-Wing KEM key, both derived from 32-byte seeds.
type Identity struct {
	signSeed [32]byte
	kemSeed  [32]byte
	sign     ed25519.PrivateKey
	kem      *xwing.PrivateKey
	pub      *PublicIdentity
}

// NewIdentity creates an identity from 64 bytes of rand. Use crypto/rand in
// production and a seeded reader in tests and simulations.
func NewIdentity(rand io.Reader) (*Identity, error) {
	var seeds [64]byte
	if _, err := io.ReadFull(rand, seeds[:]); err != nil {
		return nil, fmt.Errorf("new identity: reading randomness: %w", err)
	}
	return identityFromSeeds(seeds[:32], seeds[32:])
}

func identityFromSeeds(signSeed, kemSeed []byte) (*Identity, error) {
	id := &Identity{}
	copy(id.signSeed[:], signSeed)
	copy(id.kemSeed[:], kemSeed)
	id.sign = ed25519.NewKeyFromSeed(id.signSeed[:])
	sk, pk := xwing.DeriveKeyPair(id.kemSeed[:])
	id.kem = sk
	var kemPub [KEMPublicKeySize]byte
	pk.Pack(kemPub[:])
	pub, err := newPublicIdentityKey(id.sign.Public().(ed25519.PublicKey), kemPub[:], pk)
	if err != nil {
		return nil, err
	}
	id.pub = pub
	return id, nil
}

// Public returns the public identity.
func (id *Identity) Public() *PublicIdentity { return id.pub }

// Address returns the identity's mesh address.
func (id *Identity) Address() Address { return id.pub.addr }

// Compact returns the compact public identity.
func (id *Identity) Compact() CompactIdentity { return id.pub.compact }

// SigningKey returns the Ed25519 private key. Treat the result as secret.
// (The daemon's libp2p host key is a different key, which this one
// certifies; no key signs in two protocols.)
func (id *Identity) SigningKey() ed25519.PrivateKey { return id.sign }

// Sign signs msg for use outside the mesh protocol (for example a DHT
// record). The label separates domains: a signature under one label never
// verifies under another, and "meshd-ext/" is put in front of every label so
// no external signature can ever verify as a protocol object.
func (id *Identity) Sign(label string, msg []byte) []byte {
	return id.signLabelled(labelExternal+label, msg)
}

// sign signs label || msg.
func (id *Identity) signLabelled(label string, msg []byte) []byte {
	return ed25519.Sign(id.sign, labelled(label, msg))
}

// MarshalBinary encodes the private identity for a key file (69 bytes):
//
//	0     1                 33                65          69
//	+-----+-----------------+-----------------+-----------+
//	| 0x01| Ed25519 seed    | X-Wing seed     | checksum  |
//	+-----+-----------------+-----------------+-----------+
//
// The checksum is the first 4 bytes of SHA-256 over the preceding bytes; it
// catches a damaged key file before it silently becomes another identity.
// The result is secret: store it with file mode 0600.
func (id *Identity) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, PrivateIdentitySize)
	b = append(b, identityFormatVersion)
	b = append(b, id.signSeed[:]...)
	b = append(b, id.kemSeed[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:4]...), nil
}

// ParseIdentity decodes a private identity written by MarshalBinary.
func ParseIdentity(b []byte) (*Identity, error) {
	if len(b) > PrivateIdentitySize {
		return nil, fmt.Errorf("identity: %d bytes, want %d: %w", len(b), PrivateIdentitySize, ErrTooLarge)
	}
	r := newReader("identity", b)
	v := r.u8("version")
	signSeed := r.bytes(32, "signing seed")
	kemSeed := r.bytes(32, "KEM seed")
	check := r.bytes(4, "checksum")
	if err := r.done(); err != nil {
		return nil, err
	}
	if v != identityFormatVersion {
		return nil, fmt.Errorf("identity: version %d: %w", v, ErrUnknownKind)
	}
	sum := sha256.Sum256(b[:PrivateIdentitySize-4])
	if subtle.ConstantTimeCompare(sum[:4], check) != 1 {
		return nil, fmt.Errorf("identity: checksum mismatch (damaged key file?): %w", ErrMalformed)
	}
	return identityFromSeeds(signSeed, kemSeed)
}

func labelled(label string, msg []byte) []byte {
	b := make([]byte, 0, len(label)+1+len(msg))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, msg...)
}

// Timestamp is a point in time in whole seconds since the Unix epoch, as it
// travels on the wire (4 bytes, unsigned, good until 2106).
type Timestamp uint32

// TimestampOf converts t to a Timestamp, truncating to whole seconds and
// clamping to the representable range.
func TimestampOf(t time.Time) Timestamp {
	s := t.Unix()
	switch {
	case s < 0:
		return 0
	case s > int64(^uint32(0)):
		return Timestamp(^uint32(0))
	}
	return Timestamp(s)
}

// Time converts ts back to a time.Time in UTC.
func (ts Timestamp) Time() time.Time { return time.Unix(int64(ts), 0).UTC() }

func appendTimestamp(b []byte, ts Timestamp) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(ts))
}
