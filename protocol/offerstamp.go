package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Offer stamps make a custody offer to a mailbox relay cost its sender CPU
// time when the relay does not know the sender: hashcash over SHA-256, as
// LXMF propagation nodes ask of unknown senders. A stamp is bound to the
// envelope key and the relay's address, so it is worth one envelope at one
// relay; it carries no time (the envelope's own expiry bounds it).

// KindCustodyOfferStamped is a custody offer with a proof-of-work stamp.
const KindCustodyOfferStamped Kind = 0x1F

// Offer stamp sizes and limits.
const (
	// OfferStampSize is the size of the stamp in front of the envelope:
	// bits (1) and nonce (8).
	OfferStampSize = 1 + 8
	// MaxStampedOfferSize bounds an encoded stamped custody offer: that of
	// an unstamped one, so it fits a hop frame too. The stamp takes 9 bytes
	// of the envelope's room; an offer travels as a control envelope's
	// payload (at most MaxPayloadSize), far under either bound.
	MaxStampedOfferSize = MaxCustodyOfferSize
	// MaxOfferStampBits bounds the difficulty a relay may ask for; a
	// sender mints at most this many bits (2^24 hashes, seconds of CPU).
	MaxOfferStampBits = 24
	// CustodyStampAnswerSize is the size of a "stamp required" answer.
	CustodyStampAnswerSize = CustodyAcceptSize + 1
	labelOfferStamp        = "meshd/offer-stamp/v1"
)

// CustodyRefusedStamp: the relay does not know the sender and keeps the
// envelope only with a stamp of the bits its answer names. It travels only
// in the 19-byte answer [ParseCustodyAnswer] reads.
const CustodyRefusedStamp CustodyStatus = 3

// ErrStamp reports a stamp that does not reach the bits it must.
var ErrStamp = errors.New("protocol: offer stamp insufficient")

// OfferStamp is a proof of work: SHA-256("meshd/offer-stamp/v1" || 0 ||
// envelope key || relay address || offerer address || bits || nonce) starts
// with Bits zero bits. The offerer is the signer of the control envelope
// that carries the offer: a stamp seen go by is worth nothing to another.
type OfferStamp struct {
	Bits  uint8
	Nonce uint64
}

// Hash returns the digest the stamp's work is measured on.
func (s OfferStamp) Hash(key EnvelopeKey, relay, offerer Address) [sha256.Size]byte {
	var b [len(labelOfferStamp) + 1 + len(EnvelopeKey{}) + 2*AddressSize + OfferStampSize]byte
	n := copy(b[:], labelOfferStamp)
	n++ // the 0 separator
	n += copy(b[n:], key[:])
	n += copy(b[n:], relay[:])
	n += copy(b[n:], offerer[:])
	b[n] = s.Bits
	binary.BigEndian.PutUint64(b[n+1:], s.Nonce)
	return sha256.Sum256(b[:])
}

// Check reports whether the stamp is worth at least min bits for key
// offered by offerer at relay: its claimed bits reach min and its hash
// reaches its claimed bits. A stamp made for another envelope, relay or
// offerer fails the second test.
func (s OfferStamp) Check(key EnvelopeKey, relay, offerer Address, min uint8) error {
	if s.Bits < min {
		return fmt.Errorf("offer stamp of %d bits, want %d: %w", s.Bits, min, ErrStamp)
	}
	if z := leadingZeros(s.Hash(key, relay, offerer)); z < int(s.Bits) {
		return fmt.Errorf("offer stamp does not reach its %d bits: %w", s.Bits, ErrStamp)
	}
	return nil
}

// MintOfferStamp searches a stamp of want bits for key offered by offerer
// at relay, trying
// nonces from start on, at most maxTries of them: the caller bounds the
// time it spends (the expected cost is 2^want hashes).
func MintOfferStamp(key EnvelopeKey, relay, offerer Address, want uint8, start, maxTries uint64) (OfferStamp, error) {
	if want > MaxOfferStampBits {
		return OfferStamp{}, fmt.Errorf("mint offer stamp: %d bits, limit %d: %w", want, MaxOfferStampBits, ErrTooLarge)
	}
	s := OfferStamp{Bits: want, Nonce: start}
	for i := uint64(0); i < maxTries; i++ {
		if leadingZeros(s.Hash(key, relay, offerer)) >= int(want) {
			return s, nil
		}
		s.Nonce++
	}
	return OfferStamp{}, fmt.Errorf("mint offer stamp: no %d-bit stamp in %d tries: %w", want, maxTries, ErrStamp)
}

func leadingZeros(h [sha256.Size]byte) int {
	n := 0
	for i := 0; i < len(h); i += 8 {
		w := binary.BigEndian.Uint64(h[i:])
		n += bits.LeadingZeros64(w)
		if w != 0 {
			break
		}
	}
	return n
}

// ParseStampedCustodyOffer decodes a stamped custody offer.
//
//	0      1      2           10
//	+------+------+-----------+-----------------------------------
//	| 0x1F | bits | nonce     | envelope (kind 0x10 encoding)
//	+------+------+-----------+-----------------------------------
//
// As [ParseCustodyOffer], the envelope's signature is not checked; nor is
// the stamp (its check needs the relay's address: [OfferStamp.Check]).
func ParseStampedCustodyOffer(b []byte) (*Envelope, OfferStamp, error) {
	if len(b) > MaxStampedOfferSize {
		return nil, OfferStamp{}, fmt.Errorf("stamped custody offer: %d bytes, limit %d: %w", len(b), MaxStampedOfferSize, ErrTooLarge)
	}
	r := newReader("stamped custody offer", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindCustodyOfferStamped {
		return nil, OfferStamp{}, fmt.Errorf("stamped custody offer: %v: %w", k, ErrUnknownKind)
	}
	s := OfferStamp{Bits: r.u8("bits"), Nonce: r.u64("nonce")}
	if r.err != nil {
		return nil, OfferStamp{}, r.err
	}
	e, err := ParseEnvelope(r.rest())
	if err != nil {
		return nil, OfferStamp{}, fmt.Errorf("stamped custody offer: %w", err)
	}
	return e, s, nil
}

// AppendStampedCustodyOffer appends a stamped custody offer of the encoded
// envelope envelopeRaw to b. It does not validate either.
func AppendStampedCustodyOffer(b []byte, s OfferStamp, envelopeRaw []byte) []byte {
	b = append(b, byte(KindCustodyOfferStamped), s.Bits)
	b = binary.BigEndian.AppendUint64(b, s.Nonce)
	return append(b, envelopeRaw...)
}

// ParseCustodyAnswer decodes a custody answer as [ParseCustodyAccept] does,
// and also the "stamp required" answer, which names the bits wanted:
//
//	0      1                 17       18     19
//	+------+-----------------+--------+------+
//	| 0x1D | message ID      | 3      | bits |
//	+------+-----------------+--------+------+
//
// bits is 0 for the other statuses.
func ParseCustodyAnswer(b []byte) (MessageID, CustodyStatus, uint8, error) {
	if len(b) != CustodyStampAnswerSize || b[CustodyAcceptSize-1] != byte(CustodyRefusedStamp) {
		id, st, err := ParseCustodyAccept(b)
		return id, st, 0, err
	}
	id, _, err := ParseCustodyAccept(append(b[:CustodyAcceptSize-1:CustodyAcceptSize-1], byte(CustodyRefusedPolicy)))
	if err != nil {
		return MessageID{}, 0, 0, err
	}
	if b[CustodyAcceptSize] > MaxOfferStampBits {
		return MessageID{}, 0, 0, fmt.Errorf("custody answer: stamp of %d bits, limit %d: %w", b[CustodyAcceptSize], MaxOfferStampBits, ErrMalformed)
	}
	return id, CustodyRefusedStamp, b[CustodyAcceptSize], nil
}

// AppendCustodyStampAnswer appends a "stamp required" answer for id, asking
// for bits.
func AppendCustodyStampAnswer(b []byte, id MessageID, want uint8) []byte {
	b = AppendCustodyAccept(b, id, CustodyRefusedStamp)
	return append(b, want)
}
