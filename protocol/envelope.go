package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/cloudflare/circl/hpke"
)

// MessageID identifies a message end to end. It is 16 random bytes drawn by
// the sender; forwarders and receivers deduplicate by it.
type MessageID [16]byte

// NewMessageID draws a message ID from rand.
func NewMessageID(rand io.Reader) (MessageID, error) {
	var id MessageID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("message ID: reading randomness: %w", err)
	}
	return id, nil
}

// String returns the ID as 32 hex characters.
func (id MessageID) String() string { return Address(id).String() }

// Type says which service an envelope's payload belongs to.
type Type uint8

// Envelope types. Unknown types are rejected by the decoder.
const (
	TypeMessage Type = 1 // an application message for the recipient's inbox
	TypeReceipt Type = 2 // a delivery receipt travelling back to the origin
	TypeFAPP    Type = 3 // a FAPP protocol message (announce, query, reservation)
	TypeControl Type = 4 // mesh control traffic between nodes (key requests, custody hand-off)
	// TypeSessionMessage is a message that began over a route session and
	// goes on as an envelope (its route broke): the payload is the session
	// message (number, body), so the recipient delivers it once whichever
	// form arrives (SessionMessageKey).
	TypeSessionMessage Type = 5
	TypeEcho           Type = 6 // an echo request (meshctl ping): answered by the receipt alone
	maxType                 = TypeEcho
)

func (t Type) String() string {
	switch t {
	case TypeMessage:
		return "message"
	case TypeReceipt:
		return "receipt"
	case TypeFAPP:
		return "fapp"
	case TypeControl:
		return "control"
	case TypeSessionMessage:
		return "session-message"
	case TypeEcho:
		return "echo"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Flags modify how an envelope is to be read.
type Flags uint8

// Envelope flags. Unknown bits are rejected by the decoder.
const (
	// FlagSealed: the payload is HPKE-sealed to the destination.
	FlagSealed Flags = 1 << 0
	// FlagSealedSender: the sender's identity and signature travel inside the
	// sealed payload; the header carries neither. Requires FlagSealed.
	FlagSealedSender Flags = 1 << 1
	// FlagWantReceipt: the sender asks the recipient for a signed receipt.
	FlagWantReceipt Flags = 1 << 2
	knownFlags            = FlagSealed | FlagSealedSender | FlagWantReceipt
)

// Envelope limits.
const (
	// MaxHopLimit is the largest hop limit an envelope may carry.
	MaxHopLimit = 64
	// MaxPayloadSize bounds an envelope's payload (including the KEM
	// ciphertext and AEAD tag of a sealed payload).
	MaxPayloadSize = 64 * 1024
	// MaxLifetime bounds Expires - Created.
	MaxLifetime = 30 * 24 * time.Hour
	// envelopeFixedSize is the header without the sender block and payload.
	envelopeFixedSize = 1 + 1 + 1 + 1 + 1 + 16 + 4 + 4 + AddressSize
	// MaxEnvelopeSize bounds an encoded envelope.
	MaxEnvelopeSize = envelopeFixedSize + CompactIdentitySize + 4 + MaxPayloadSize + SignatureSize
	// SealOverhead is what HPKE sealing adds to a padded plaintext: the
	// X-Wing ciphertext and the ChaCha20-Poly1305 tag.
	SealOverhead = KEMCiphertextSize + 16
	// sealedSenderOverhead is the inner sender block of a sealed-sender
	// plaintext: compact identity and signature.
	sealedSenderOverhead = CompactIdentitySize + SignatureSize
	hopCountOffset       = 4
)

const (
	labelEnvelopeKey   = "meshd/envelope-key/v1"
	labelSealedKey     = "meshd/envelope-key/sealed-sender/v1"
	labelEnvelope      = "meshd/envelope/v1"
	labelEnvelopeInner = "meshd/envelope-inner/v1"
	labelSeal          = "meshd/seal/v1"
)

// The HPKE suite of meshd envelopes (RFC 9180): X-Wing (X25519 +
// ML-KEM-768), HKDF-SHA256, ChaCha20-Poly1305.
var sealSuite = hpke.NewSuite(hpke.KEM_XWING, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)

// Envelope is the end-to-end unit that meshd routes: a header, a payload
// (usually sealed for the destination) and the sender's signature.
//
//	off  size  field
//	0    1     kind 0x10 (envelope, format version 1)
//	1    1     type (service)
//	2    1     flags
//	3    1     hop limit (1..64)
//	4    1     hop count (0..limit)           <- the only field forwarders change
//	5    16    message ID
//	21   4     created (Unix seconds)
//	25   4     expires (Unix seconds, > created, lifetime <= 30 days)
//	29   16    destination address
//	45   64    sender: Ed25519 key + KEM key hash (absent with FlagSealedSender)
//	..   4     payload length n (<= 64 KiB)
//	..   n     payload (HPKE enc || ciphertext when FlagSealed)
//	..   64    Ed25519 signature (absent with FlagSealedSender)
//
// The signature covers every byte except the hop count, so a forwarder can
// count hops but change nothing else. The source address is not sent: it is
// derived from the sender block, which therefore cannot be spoofed without
// the sender's signing key.
type Envelope struct {
	Type     Type
	Flags    Flags
	HopLimit uint8
	HopCount uint8
	ID       MessageID
	Created  Timestamp
	Expires  Timestamp
	Dest     Address
	// Sender is the sender's compact identity; the zero value with
	// FlagSealedSender.
	Sender    CompactIdentity
	Payload   []byte
	Signature [SignatureSize]byte
}

// Header holds the fields a sender chooses for a new envelope.
type Header struct {
	Type        Type
	HopLimit    uint8
	ID          MessageID
	Created     Timestamp
	Expires     Timestamp
	Dest        Address
	WantReceipt bool
}

// Source returns the sender's address, and false for a sealed-sender
// envelope, whose sender only the recipient learns.
func (e *Envelope) Source() (Address, bool) {
	if e.Flags&FlagSealedSender != 0 {
		return Address{}, false
	}
	return e.Sender.Address(), true
}

func (e *Envelope) validate() error {
	switch {
	case e.Type == 0 || e.Type > maxType:
		return fmt.Errorf("envelope: %v: %w", e.Type, ErrUnknownKind)
	case e.Flags&^knownFlags != 0:
		return fmt.Errorf("envelope: unknown flags 0x%02x: %w", uint8(e.Flags&^knownFlags), ErrMalformed)
	case e.Flags&FlagSealedSender != 0 && e.Flags&FlagSealed == 0:
		return fmt.Errorf("envelope: sealed sender without a sealed payload: %w", ErrMalformed)
	case e.HopLimit == 0 || e.HopLimit > MaxHopLimit:
		return fmt.Errorf("envelope: hop limit %d not in 1..%d: %w", e.HopLimit, MaxHopLimit, ErrMalformed)
	case e.HopCount > e.HopLimit:
		return fmt.Errorf("envelope: hop count %d over limit %d: %w", e.HopCount, e.HopLimit, ErrMalformed)
	case e.Expires <= e.Created:
		return fmt.Errorf("envelope: expires %d not after created %d: %w", e.Expires, e.Created, ErrMalformed)
	case time.Duration(e.Expires-e.Created)*time.Second > MaxLifetime:
		return fmt.Errorf("envelope: lifetime %ds over %v: %w", e.Expires-e.Created, MaxLifetime, ErrMalformed)
	case len(e.Payload) > MaxPayloadSize:
		return fmt.Errorf("envelope: payload %d bytes: %w", len(e.Payload), ErrTooLarge)
	case e.Flags&FlagSealed != 0 && len(e.Payload) < SealOverhead+1:
		return fmt.Errorf("envelope: sealed payload of %d bytes is too short: %w", len(e.Payload), ErrMalformed)
	case e.Flags&FlagSealedSender != 0 && (e.Sender != CompactIdentity{} || e.Signature != [SignatureSize]byte{}):
		return fmt.Errorf("envelope: sealed sender with a sender or signature in the header: %w", ErrMalformed)
	}
	return nil
}

// appendSignedHeader appends the header without the hop count (what the
// signature and the HPKE associated data cover), up to and including the
// sender block.
func (e *Envelope) appendSignedHeader(b []byte) []byte { return e.appendHeader(b, false) }

// appendHeader appends the header up to and including the sender block, with
// the hop count byte if withHops.
func (e *Envelope) appendHeader(b []byte, withHops bool) []byte {
	b = append(b, byte(KindEnvelope), byte(e.Type), byte(e.Flags), e.HopLimit)
	if withHops {
		b = append(b, e.HopCount)
	}
	b = append(b, e.ID[:]...)
	b = appendTimestamp(b, e.Created)
	b = appendTimestamp(b, e.Expires)
	b = append(b, e.Dest[:]...)
	if e.Flags&FlagSealedSender == 0 {
		b = e.Sender.appendTo(b)
	}
	return b
}

// signedBytes is what the outer signature covers: the header without the hop
// count, the payload length and the payload.
func (e *Envelope) signedBytes() []byte {
	b := e.appendSignedHeader(make([]byte, 0, envelopeFixedSize+CompactIdentitySize+4+len(e.Payload)))
	b = appendU32(b, uint32(len(e.Payload)))
	return append(b, e.Payload...)
}

// Size returns the encoded size in bytes.
func (e *Envelope) Size() int {
	n := envelopeFixedSize + 4 + len(e.Payload)
	if e.Flags&FlagSealedSender == 0 {
		n += CompactIdentitySize + SignatureSize
	}
	return n
}

// AppendBinary appends the encoded envelope to b. It fails if the envelope
// breaks a format rule.
func (e *Envelope) AppendBinary(b []byte) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b = e.appendHeader(b, true)
	b = appendU32(b, uint32(len(e.Payload)))
	b = append(b, e.Payload...)
	if e.Flags&FlagSealedSender == 0 {
		b = append(b, e.Signature[:]...)
	}
	return b, nil
}

// MarshalBinary encodes the envelope.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.Size()))
}

// ParseEnvelope decodes an envelope strictly: sizes, known kind, type and
// flags, hop and time rules, no trailing bytes. It does not verify the
// signature (see Verify). The payload aliases b.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("envelope: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := newReader("envelope", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindEnvelope {
		return nil, fmt.Errorf("envelope: %v: %w", k, ErrUnknownKind)
	}
	e := &Envelope{}
	e.Type = Type(r.u8("type"))
	e.Flags = Flags(r.u8("flags"))
	e.HopLimit = r.u8("hop limit")
	e.HopCount = r.u8("hop count")
	r.copyInto(e.ID[:], "message ID")
	e.Created = Timestamp(r.u32("created"))
	e.Expires = Timestamp(r.u32("expires"))
	r.copyInto(e.Dest[:], "destination")
	sealedSender := e.Flags&FlagSealedSender != 0
	if !sealedSender {
		e.Sender = r.compactIdentity("sender")
	}
	n := r.u32("payload length")
	if r.err == nil && n > MaxPayloadSize {
		return nil, fmt.Errorf("envelope: payload length %d: %w", n, ErrTooLarge)
	}
	e.Payload = r.bytes(int(n), "payload")
	if !sealedSender {
		r.copyInto(e.Signature[:], "signature")
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// CheckTime reports whether the envelope is alive at now: not expired, and
// not created more than skew ahead of now.
func (e *Envelope) CheckTime(now time.Time, skew time.Duration) error {
	ts := TimestampOf(now)
	if ts >= e.Expires {
		return fmt.Errorf("envelope %v: expired at %d: %w", e.ID, e.Expires, ErrExpired)
	}
	if e.Created > TimestampOf(now.Add(skew)) {
		return fmt.Errorf("envelope %v: created %d ahead of now %d: %w", e.ID, e.Created, ts, ErrFromFuture)
	}
	return nil
}

// VerifySignature checks the outer signature against the sender block. A
// sealed-sender envelope has no outer signature: only its recipient can
// authenticate it (Open does), and forwarders can check only its form and
// times.
func (e *Envelope) VerifySignature() error {
	if e.Flags&FlagSealedSender != 0 {
		return nil
	}
	if !e.Sender.verify(labelEnvelope, e.signedBytes(), e.Signature[:]) {
		return fmt.Errorf("envelope %v: %w", e.ID, ErrBadSignature)
	}
	return nil
}

// Verify checks times and the signature: what a forwarder checks once
// before relaying.
func (e *Envelope) Verify(now time.Time, skew time.Duration) error {
	if err := e.CheckTime(now, skew); err != nil {
		return err
	}
	return e.VerifySignature()
}

func (h Header) envelope(flags Flags) *Envelope {
	if h.WantReceipt {
		flags |= FlagWantReceipt
	}
	return &Envelope{
		Type: h.Type, Flags: flags, HopLimit: h.HopLimit, ID: h.ID,
		Created: h.Created, Expires: h.Expires, Dest: h.Dest,
	}
}

// SignEnvelope builds a signed envelope whose payload travels in the clear
// (for public content such as FAPP announces or receipts).
func SignEnvelope(from *Identity, h Header, payload []byte) (*Envelope, error) {
	e := h.envelope(0)
	e.Sender = from.Compact()
	e.Payload = payload
	if err := e.validate(); err != nil {
		return nil, err
	}
	copy(e.Signature[:], from.signLabelled(labelEnvelope, e.signedBytes()))
	return e, nil
}

// SealOptions choose how an envelope is sealed.
type SealOptions struct {
	// SealedSender hides the sender from everyone but the recipient.
	SealedSender bool
	// Padding rounds the plaintext up before sealing; nil uses
	// DefaultPadding.
	Padding *Padding
}

// SealEnvelope builds an envelope whose body is sealed for to with HPKE
// (X-Wing, HKDF-SHA256, ChaCha20-Poly1305) and signed by from. The header
// (without the hop count) is the HPKE associated data, so a ciphertext cannot
// be moved under another header. rand supplies the KEM encapsulation
// randomness.
func SealEnvelope(rand io.Reader, from *Identity, to *PublicIdentity, h Header, body []byte, opts SealOptions) (*Envelope, error) {
	if h.Dest != to.Address() {
		return nil, fmt.Errorf("seal: header destination %v is not the recipient %v: %w", h.Dest, to.Address(), ErrMalformed)
	}
	flags := FlagSealed
	if opts.SealedSender {
		flags |= FlagSealedSender
	}
	e := h.envelope(flags)
	if !opts.SealedSender {
		e.Sender = from.Compact()
	}
	// Validate with a placeholder payload of the minimum sealed size, so a
	// bad header fails before any cryptography.
	e.Payload = make([]byte, SealOverhead+1)
	if err := e.validate(); err != nil {
		return nil, err
	}
	aad := e.appendSignedHeader(nil)

	plain := body
	if opts.SealedSender {
		inner := make([]byte, 0, sealedSenderOverhead+len(body))
		inner = from.Compact().appendTo(inner)
		inner = append(inner, from.signLabelled(labelEnvelopeInner, append(bytes.Clone(aad), body...))...)
		plain = append(inner, body...)
	}
	pad := DefaultPadding
	if opts.Padding != nil {
		pad = *opts.Padding
	}
	padded, err := pad.Pad(plain, MaxPayloadSize-SealOverhead)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sender, err := sealSuite.NewSender(to.kem, []byte(labelSeal))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	enc, sealer, err := sender.Setup(rand)
	if err != nil {
		return nil, fmt.Errorf("seal: HPKE setup: %w", err)
	}
	ct, err := sealer.Seal(padded, aad)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	e.Payload = append(enc, ct...)
	if !opts.SealedSender {
		copy(e.Signature[:], from.signLabelled(labelEnvelope, e.signedBytes()))
	}
	return e, nil
}

// Opened is the authenticated content of a sealed envelope.
type Opened struct {
	// Sender is who signed the message; From is its address.
	Sender CompactIdentity
	From   Address
	Body   []byte
}

// Open decrypts a sealed envelope addressed to me and authenticates its
// sender: the outer signature for an ordinary envelope, the inner signature
// for a sealed-sender one. It does not check times (see CheckTime).
func (e *Envelope) Open(me *Identity) (*Opened, error) {
	if err := e.VerifySignature(); err != nil {
		return nil, err
	}
	return e.OpenVerified(me)
}

// OpenVerified is Open for an envelope whose outer signature the caller has
// already checked (VerifySignature or Verify): it skips that check, so a
// destination verifies each envelope once. The inner signature of a
// sealed-sender envelope is still checked: nothing else authenticates it.
func (e *Envelope) OpenVerified(me *Identity) (*Opened, error) {
	if e.Flags&FlagSealed == 0 {
		return nil, fmt.Errorf("open %v: payload is not sealed: %w", e.ID, ErrMalformed)
	}
	if e.Dest != me.Address() {
		return nil, fmt.Errorf("open %v: for %v: %w", e.ID, e.Dest, ErrNotForUs)
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	aad := e.appendSignedHeader(nil)
	receiver, err := sealSuite.NewReceiver(me.kem, []byte(labelSeal))
	if err != nil {
		return nil, fmt.Errorf("open %v: %w", e.ID, err)
	}
	opener, err := receiver.Setup(e.Payload[:KEMCiphertextSize])
	if err != nil {
		return nil, fmt.Errorf("open %v: %w: %v", e.ID, ErrDecrypt, err)
	}
	padded, err := opener.Open(e.Payload[KEMCiphertextSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("open %v: %w", e.ID, ErrDecrypt)
	}
	plain, err := Unpad(padded)
	if err != nil {
		return nil, fmt.Errorf("open %v: %w", e.ID, err)
	}
	if e.Flags&FlagSealedSender == 0 {
		return &Opened{Sender: e.Sender, From: e.Sender.Address(), Body: plain}, nil
	}
	r := newReader("sealed sender", plain)
	sender := r.compactIdentity("sender")
	sig := r.bytes(SignatureSize, "signature")
	if r.err != nil {
		return nil, fmt.Errorf("open %v: %w", e.ID, r.err)
	}
	body := r.rest()
	if !sender.verify(labelEnvelopeInner, append(aad, body...), sig) {
		return nil, fmt.Errorf("open %v: inner signature: %w", e.ID, ErrBadSignature)
	}
	return &Opened{Sender: sender, From: sender.Address(), Body: body}, nil
}

// IncrementHopCount adds one hop to an encoded envelope in place, so a
// forwarder need not re-encode (the signature does not cover the hop count).
// It fails with ErrHopLimit when the limit is reached.
func IncrementHopCount(raw []byte) error {
	if len(raw) < envelopeFixedSize || Kind(raw[0]) != KindEnvelope {
		return fmt.Errorf("increment hop count: %w", ErrMalformed)
	}
	if raw[hopCountOffset] >= raw[hopCountOffset-1] {
		return fmt.Errorf("increment hop count: %d of %d: %w", raw[hopCountOffset], raw[hopCountOffset-1], ErrHopLimit)
	}
	raw[hopCountOffset]++
	return nil
}

// EnvelopeID returns the message ID of an encoded envelope without decoding
// the rest, for cheap duplicate checks before verification.
func EnvelopeID(raw []byte) (MessageID, error) {
	var id MessageID
	if len(raw) < envelopeFixedSize || Kind(raw[0]) != KindEnvelope {
		return id, fmt.Errorf("envelope ID: %w", ErrMalformed)
	}
	copy(id[:], raw[5:21])
	return id, nil
}

// EnvelopeKeySize is the size of an envelope key.
const EnvelopeKeySize = 16

// EnvelopeKey names one envelope by its content, where the message ID names
// it only by the sender's word: every copy of one envelope has one key, and
// no forwarder can give another envelope the same key. Nodes key duplicate
// suppression, delivery, custody, hop acks and receipts on it.
//
// For a signed envelope it is a digest of the signed bytes (everything but
// the hop count and the signature): changing any of them breaks the
// signature, and two valid signatures over the same bytes are one message.
// A sealed-sender envelope has no outer signature, so a forwarder can
// rewrite any header field; its key is a digest of the sealed payload only.
// The payload cannot be changed without the recipient's AEAD check failing,
// its HPKE encapsulation is fresh for every message, and the header is the
// AEAD's associated data: a copy under a rewritten header has the same key
// (so it is a duplicate) and cannot be opened.
//
// 16 bytes (a truncated SHA-256 under a domain-separation label): taking a
// genuine envelope's key needs a second preimage, 2^128 work; a collision
// (2^64) only pairs two envelopes the attacker made itself. 16 bytes is also
// the size of the dedup caches' keys and of the hop ack frame.
type EnvelopeKey [EnvelopeKeySize]byte

// String returns the key as 32 hex characters.
func (k EnvelopeKey) String() string { return hex.EncodeToString(k[:]) }

// Key returns the envelope's key.
func (e *Envelope) Key() EnvelopeKey {
	if e.Flags&FlagSealedSender != 0 {
		return envelopeKey(labelSealedKey, e.Payload, nil)
	}
	return envelopeKey(labelEnvelopeKey, e.signedBytes(), nil)
}

// EnvelopeKeyOf returns the key of an encoded envelope without decoding it,
// for duplicate checks before verification. For a well-formed envelope it is
// the same as Key; for a malformed one it is some value, or an error where
// the fields it needs are missing.
func EnvelopeKeyOf(raw []byte) (EnvelopeKey, error) {
	if len(raw) < envelopeFixedSize+4 || Kind(raw[0]) != KindEnvelope {
		return EnvelopeKey{}, fmt.Errorf("envelope key: %w", ErrMalformed)
	}
	if Flags(raw[2])&FlagSealedSender != 0 {
		return envelopeKey(labelSealedKey, raw[envelopeFixedSize+4:], nil), nil
	}
	if len(raw) < envelopeFixedSize+CompactIdentitySize+4+SignatureSize {
		return EnvelopeKey{}, fmt.Errorf("envelope key: %w", ErrMalformed)
	}
	return envelopeKey(labelEnvelopeKey, raw[:hopCountOffset], raw[hopCountOffset+1:len(raw)-SignatureSize]), nil
}

func envelopeKey(label string, a, b []byte) EnvelopeKey {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(a)
	h.Write(b)
	var k EnvelopeKey
	copy(k[:], h.Sum(nil))
	return k
}
