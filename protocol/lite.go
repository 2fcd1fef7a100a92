package protocol

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"
)

// Lite sessions carry unicast traffic over constrained links (LoRa), where a
// 1,136-byte HPKE overhead per message is unaffordable. One hybrid-KEM
// exchange (a LiteInit, fragmented if the link needs it) establishes a
// symmetric session; after that every message is a compact frame:
//
//	0      1            7         11              11+n        27+n
//	+------+------------+---------+---------------+-----------+
//	| 0x14 | session ID | counter | ciphertext    | tag (16)  |
//	+------+------------+---------+---------------+-----------+
//
// 27 bytes of overhead per frame, with a full 16-byte tag. Each direction has
// its own session ID and key chain. The key for message n comes from a
// one-way chain (ck[n+1] = HMAC(ck[n], 0x02), mk[n] = HMAC(ck[n], 0x01)), and
// used keys are erased, so a node that is compromised later cannot decrypt
// the frames it already received (forward secrecy within the session).
// Frames may arrive out of order within a replay window of 64 counters; a
// counter that was accepted, or fell out of the window, is refused.
//
// Encryption is ChaCha20 (the key is unique per message, so the nonce is
// fixed) followed by HMAC-SHA256 over kind, session ID, counter and
// ciphertext, truncated to 16 bytes (encrypt-then-MAC).

// Lite session sizes and bounds.
const (
	LiteSessionIDSize = 6
	LiteTagSize       = 16
	liteHeaderSize    = 1 + LiteSessionIDSize + 4
	// LiteOverhead is the per-frame overhead of a lite data frame.
	LiteOverhead = liteHeaderSize + LiteTagSize
	// MaxLitePlaintext bounds the plaintext of one lite frame.
	MaxLitePlaintext = 16 * 1024
	// LiteReplayWindow is how far behind the newest counter a frame may
	// arrive and still be accepted once.
	LiteReplayWindow = 64
	// LiteMaxSkip is how far ahead of the next expected counter a frame may
	// be; it bounds the work a forged counter can cause.
	LiteMaxSkip        = 1024
	liteInitPrefixSize = 1 + CompactIdentitySize + AddressSize + 4
	// LiteInitSize is the encoded size of a session initiation.
	LiteInitSize = liteInitPrefixSize + KEMCiphertextSize + SignatureSize
	// DefaultLiteInitMaxAge is how old a LiteInit may be when accepted.
	DefaultLiteInitMaxAge = 10 * time.Minute
)

const (
	labelLiteInit   = "meshd/lite-init/v1"
	labelLiteHPKE   = "meshd/lite/v1"
	labelLiteMsgKey = "meshd/lite-msg/v1"
)

// LiteSessionID names one direction of a lite session on the wire. It is
// derived from the key exchange, so both ends agree on it without sending it.
type LiteSessionID [LiteSessionIDSize]byte

func (id LiteSessionID) String() string { return hex.EncodeToString(id[:]) }

// LiteInit starts a lite session. The initiator encapsulates a fresh secret
// to the responder's X-Wing key with HPKE and signs the whole message.
//
//	off   size  field
//	0     1     kind 0x13
//	1     64    initiator compact identity
//	65    16    responder address
//	81    4     timestamp (Unix seconds)
//	85    1120  HPKE encapsulated key (X-Wing)
//	1205  64    Ed25519 signature by the initiator over bytes 0..1204
//
// The first 85 bytes are also the HPKE info string, binding the session keys
// to both identities and the time. A replayed init derives the same session
// IDs; the responder refuses one whose IDs it already knows, and refuses
// inits older than DefaultLiteInitMaxAge, so it must remember session IDs at
// least that long.
type LiteInit struct {
	Initiator CompactIdentity
	Responder Address
	Timestamp Timestamp
	Enc       [KEMCiphertextSize]byte
	Signature [SignatureSize]byte
}

func (in *LiteInit) appendPrefix(b []byte) []byte {
	b = append(b, byte(KindLiteInit))
	b = in.Initiator.appendTo(b)
	b = append(b, in.Responder[:]...)
	return appendTimestamp(b, in.Timestamp)
}

func (in *LiteInit) signedBytes() []byte {
	return append(in.appendPrefix(make([]byte, 0, LiteInitSize)), in.Enc[:]...)
}

// AppendBinary appends the encoded init to b.
func (in *LiteInit) AppendBinary(b []byte) ([]byte, error) {
	b = in.appendPrefix(b)
	b = append(b, in.Enc[:]...)
	return append(b, in.Signature[:]...), nil
}

// MarshalBinary encodes the init (LiteInitSize bytes).
func (in *LiteInit) MarshalBinary() ([]byte, error) {
	return in.AppendBinary(make([]byte, 0, LiteInitSize))
}

// ParseLiteInit decodes a session initiation strictly; it does not verify it.
func ParseLiteInit(b []byte) (*LiteInit, error) {
	if len(b) > LiteInitSize {
		return nil, fmt.Errorf("lite init: %d bytes, want %d: %w", len(b), LiteInitSize, ErrTooLarge)
	}
	r := newReader("lite init", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindLiteInit {
		return nil, fmt.Errorf("lite init: %v: %w", k, ErrUnknownKind)
	}
	in := &LiteInit{}
	in.Initiator = r.compactIdentity("initiator")
	r.copyInto(in.Responder[:], "responder")
	in.Timestamp = Timestamp(r.u32("timestamp"))
	r.copyInto(in.Enc[:], "encapsulated key")
	r.copyInto(in.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	return in, nil
}

// LiteSession is one end of a lite session. It is not safe for concurrent
// use. Its state changes with every frame sealed or opened and must be
// persisted (MarshalBinary) before a sealed frame is sent: a sender that
// restarts from an older state would reuse message keys.
type LiteSession struct {
	initiator bool
	remote    CompactIdentity
	created   Timestamp
	sendID    LiteSessionID
	recvID    LiteSessionID
	sendChain [32]byte
	sendN     uint64
	recvChain [32]byte
	recvN     uint64
	skipped   []skippedKey // ascending counters, all < recvN, at most LiteReplayWindow
}

type skippedKey struct {
	n  uint32
	mk [32]byte
}

// StartLiteSession creates a session with peer and the LiteInit to send it.
// rand supplies the KEM encapsulation randomness.
func StartLiteSession(rand io.Reader, me *Identity, peer *PublicIdentity, now Timestamp) (*LiteSession, *LiteInit, error) {
	in := &LiteInit{Initiator: me.Compact(), Responder: peer.Address(), Timestamp: now}
	sender, err := sealSuite.NewSender(peer.kem, in.appendPrefix([]byte(labelLiteHPKE)))
	if err != nil {
		return nil, nil, fmt.Errorf("lite init: %w", err)
	}
	enc, ctx, err := sender.Setup(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("lite init: HPKE setup: %w", err)
	}
	copy(in.Enc[:], enc)
	copy(in.Signature[:], me.signLabelled(labelLiteInit, in.signedBytes()))
	s := newLiteSession(true, peer.Compact(), now, ctx)
	return s, in, nil
}

// AcceptLiteSession verifies an init addressed to me (signature, freshness
// within maxAge, or DefaultLiteInitMaxAge if zero, and a clock skew of the
// same bound ahead) and derives the responder's end of the session. The
// caller must refuse an init whose RecvID it already knows (a replay).
func AcceptLiteSession(me *Identity, in *LiteInit, now time.Time, maxAge time.Duration) (*LiteSession, error) {
	if maxAge <= 0 {
		maxAge = DefaultLiteInitMaxAge
	}
	if in.Responder != me.Address() {
		return nil, fmt.Errorf("lite init for %v: %w", in.Responder, ErrNotForUs)
	}
	if !in.Initiator.verify(labelLiteInit, in.signedBytes(), in.Signature[:]) {
		return nil, fmt.Errorf("lite init from %v: %w", in.Initiator.Address(), ErrBadSignature)
	}
	t := in.Timestamp.Time()
	if t.Before(now.Add(-maxAge)) {
		return nil, fmt.Errorf("lite init from %v at %v: %w", in.Initiator.Address(), t, ErrExpired)
	}
	if t.After(now.Add(maxAge)) {
		return nil, fmt.Errorf("lite init from %v at %v: %w", in.Initiator.Address(), t, ErrFromFuture)
	}
	receiver, err := sealSuite.NewReceiver(me.kem, in.appendPrefix([]byte(labelLiteHPKE)))
	if err != nil {
		return nil, fmt.Errorf("lite init: %w", err)
	}
	ctx, err := receiver.Setup(in.Enc[:])
	if err != nil {
		return nil, fmt.Errorf("lite init: %w: %v", ErrDecrypt, err)
	}
	return newLiteSession(false, in.Initiator, in.Timestamp, ctx), nil
}

type exporter interface {
	Export(exporterContext []byte, length uint) []byte
}

func newLiteSession(initiator bool, remote CompactIdentity, created Timestamp, ctx exporter) *LiteSession {
	s := &LiteSession{initiator: initiator, remote: remote, created: created}
	i2rChain := ctx.Export([]byte("i2r chain"), 32)
	r2iChain := ctx.Export([]byte("r2i chain"), 32)
	i2rID := ctx.Export([]byte("i2r id"), LiteSessionIDSize)
	r2iID := ctx.Export([]byte("r2i id"), LiteSessionIDSize)
	if initiator {
		copy(s.sendChain[:], i2rChain)
		copy(s.sendID[:], i2rID)
		copy(s.recvChain[:], r2iChain)
		copy(s.recvID[:], r2iID)
	} else {
		copy(s.sendChain[:], r2iChain)
		copy(s.sendID[:], r2iID)
		copy(s.recvChain[:], i2rChain)
		copy(s.recvID[:], i2rID)
	}
	return s
}

// SendID is the session ID on frames this end sends.
func (s *LiteSession) SendID() LiteSessionID { return s.sendID }

// RecvID is the session ID on frames this end receives.
func (s *LiteSession) RecvID() LiteSessionID { return s.recvID }

// Remote is the other end's compact identity.
func (s *LiteSession) Remote() CompactIdentity { return s.remote }

// Initiator reports whether this end started the session.
func (s *LiteSession) Initiator() bool { return s.initiator }

// Created is the session's start time (the init's timestamp).
func (s *LiteSession) Created() Timestamp { return s.created }

// Sent is the number of frames sealed so far.
func (s *LiteSession) Sent() uint64 { return s.sendN }

// ratchet steps a chain key: it returns the message key for the current
// position and the next chain key.
func ratchet(ck [32]byte) (mk, next [32]byte) { return hmacSteps(&ck, "") }

// liteKeys expands a message key into a ChaCha20 key and a MAC key.
func liteKeys(mk [32]byte) (encKey, macKey []byte) {
	k, err := hkdf.Expand(sha256.New, mk[:], labelLiteMsgKey, 64)
	if err != nil {
		// Expand fails only for lengths over 255*32; 64 is constant.
		panic("protocol: hkdf.Expand: " + err.Error())
	}
	return k[:32], k[32:]
}

func liteTag(macKey, headerAndCT []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(headerAndCT)
	return m.Sum(nil)[:LiteTagSize]
}

// Seal encrypts plaintext into a lite data frame and advances the sending
// chain. Persist the session before sending the frame.
func (s *LiteSession) Seal(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxLitePlaintext {
		return nil, fmt.Errorf("lite seal: %d bytes: %w", len(plaintext), ErrTooLarge)
	}
	if s.sendN > uint64(^uint32(0)) {
		return nil, fmt.Errorf("lite seal: session counter exhausted, start a new session: %w", ErrLimit)
	}
	mk, next := ratchet(s.sendChain)
	encKey, macKey := liteKeys(mk)
	frame := make([]byte, liteHeaderSize+len(plaintext), LiteOverhead+len(plaintext))
	frame[0] = byte(KindLiteData)
	copy(frame[1:], s.sendID[:])
	binary.BigEndian.PutUint32(frame[1+LiteSessionIDSize:], uint32(s.sendN))
	oneTimeXOR(encKey, frame[liteHeaderSize:], plaintext)
	frame = append(frame, liteTag(macKey, frame)...)
	s.sendChain = next
	s.sendN++
	return frame, nil
}

// LiteFrameID returns the session ID of an encoded lite data frame, so a
// receiver can find the session without decoding the rest.
func LiteFrameID(frame []byte) (LiteSessionID, error) {
	var id LiteSessionID
	if len(frame) < LiteOverhead {
		return id, fmt.Errorf("lite frame: %d bytes: %w", len(frame), ErrTruncated)
	}
	if Kind(frame[0]) != KindLiteData {
		return id, fmt.Errorf("lite frame: %v: %w", Kind(frame[0]), ErrUnknownKind)
	}
	copy(id[:], frame[1:])
	return id, nil
}

// Open authenticates and decrypts a lite data frame. The session changes
// only if the frame is authentic; a forged or damaged frame leaves it as it
// was.
func (s *LiteSession) Open(frame []byte) ([]byte, error) {
	id, err := LiteFrameID(frame)
	if err != nil {
		return nil, err
	}
	if len(frame) > LiteOverhead+MaxLitePlaintext {
		return nil, fmt.Errorf("lite frame: %d bytes: %w", len(frame), ErrTooLarge)
	}
	if id != s.recvID {
		return nil, fmt.Errorf("lite frame for session %v: %w", id, ErrNotForUs)
	}
	r := newReader("lite frame", frame[1+LiteSessionIDSize:])
	n := r.u32("counter")
	body := frame[liteHeaderSize : len(frame)-LiteTagSize]
	tag := frame[len(frame)-LiteTagSize:]
	authed := frame[:len(frame)-LiteTagSize]

	if uint64(n) < s.recvN {
		i := slices.IndexFunc(s.skipped, func(k skippedKey) bool { return k.n == n })
		if i < 0 {
			return nil, fmt.Errorf("lite frame %d (next %d): %w", n, s.recvN, ErrReplay)
		}
		pt, ok := liteOpen(s.skipped[i].mk, authed, body, tag)
		if !ok {
			return nil, fmt.Errorf("lite frame %d: %w", n, ErrDecrypt)
		}
		s.skipped = slices.Delete(s.skipped, i, i+1)
		return pt, nil
	}
	if uint64(n)-s.recvN > LiteMaxSkip {
		return nil, fmt.Errorf("lite frame %d is %d ahead of %d: %w", n, uint64(n)-s.recvN, s.recvN, ErrLimit)
	}
	ck := s.recvChain
	var skipped []skippedKey
	for m := s.recvN; m < uint64(n); m++ {
		var mk [32]byte
		mk, ck = ratchet(ck)
		if uint64(n)+1-m <= LiteReplayWindow {
			skipped = append(skipped, skippedKey{n: uint32(m), mk: mk})
		}
	}
	mk, next := ratchet(ck)
	pt, ok := liteOpen(mk, authed, body, tag)
	if !ok {
		return nil, fmt.Errorf("lite frame %d: %w", n, ErrDecrypt)
	}
	s.recvChain = next
	s.recvN = uint64(n) + 1
	s.skipped = append(s.skipped, skipped...)
	// Keep only keys inside the window behind the newest counter.
	cut := 0
	for cut < len(s.skipped) && s.recvN-uint64(s.skipped[cut].n) > LiteReplayWindow {
		cut++
	}
	s.skipped = slices.Delete(s.skipped, 0, cut)
	return pt, nil
}

func liteOpen(mk [32]byte, authed, body, tag []byte) ([]byte, bool) {
	encKey, macKey := liteKeys(mk)
	if !hmac.Equal(liteTag(macKey, authed), tag) {
		return nil, false
	}
	pt := make([]byte, len(body))
	oneTimeXOR(encKey, pt, body)
	return pt, true
}

const liteSessionFormat = 1

// MarshalBinary encodes the session state for persistence. It contains
// secret keys: store it as carefully as the identity.
//
//	0   1  version
//	1   1  flags (bit 0: initiator)
//	2   64 remote compact identity
//	66  4  created
//	70  6  send ID
//	76  6  receive ID
//	82  32 sending chain key
//	114 8  frames sent
//	122 32 receiving chain key
//	154 8  next expected counter
//	162 1  number of skipped keys k (<= 64)
//	163 36*k  counter (4) and message key (32) per skipped frame, ascending
func (s *LiteSession) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 163+36*len(s.skipped))
	b = append(b, liteSessionFormat)
	var flags byte
	if s.initiator {
		flags |= 1
	}
	b = append(b, flags)
	b = s.remote.appendTo(b)
	b = appendTimestamp(b, s.created)
	b = append(b, s.sendID[:]...)
	b = append(b, s.recvID[:]...)
	b = append(b, s.sendChain[:]...)
	b = appendU64(b, s.sendN)
	b = append(b, s.recvChain[:]...)
	b = appendU64(b, s.recvN)
	b = append(b, byte(len(s.skipped)))
	for _, k := range s.skipped {
		b = appendU32(b, k.n)
		b = append(b, k.mk[:]...)
	}
	return b, nil
}

// ParseLiteSession decodes a session written by MarshalBinary.
func ParseLiteSession(b []byte) (*LiteSession, error) {
	if len(b) > 163+36*LiteReplayWindow {
		return nil, fmt.Errorf("lite session: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := newReader("lite session", b)
	if v := r.u8("version"); r.err == nil && v != liteSessionFormat {
		return nil, fmt.Errorf("lite session: version %d: %w", v, ErrUnknownKind)
	}
	s := &LiteSession{}
	flags := r.u8("flags")
	if r.err == nil && flags&^1 != 0 {
		return nil, fmt.Errorf("lite session: flags 0x%02x: %w", flags, ErrMalformed)
	}
	s.initiator = flags&1 != 0
	s.remote = r.compactIdentity("remote")
	s.created = Timestamp(r.u32("created"))
	r.copyInto(s.sendID[:], "send ID")
	r.copyInto(s.recvID[:], "receive ID")
	r.copyInto(s.sendChain[:], "send chain")
	s.sendN = r.u64("sent")
	r.copyInto(s.recvChain[:], "receive chain")
	s.recvN = r.u64("next counter")
	k := int(r.u8("skipped count"))
	if r.err == nil && k > LiteReplayWindow {
		return nil, fmt.Errorf("lite session: %d skipped keys: %w", k, ErrMalformed)
	}
	for i := 0; i < k && r.err == nil; i++ {
		var sk skippedKey
		sk.n = r.u32("skipped counter")
		r.copyInto(sk.mk[:], "skipped key")
		s.skipped = append(s.skipped, sk)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	const limit = uint64(^uint32(0)) + 1
	if s.sendN > limit || s.recvN > limit {
		return nil, fmt.Errorf("lite session: counters %d/%d out of range: %w", s.sendN, s.recvN, ErrMalformed)
	}
	for i, sk := range s.skipped {
		if uint64(sk.n) >= s.recvN || s.recvN-uint64(sk.n) > LiteReplayWindow || (i > 0 && sk.n <= s.skipped[i-1].n) {
			return nil, fmt.Errorf("lite session: skipped counter %d: %w", sk.n, ErrMalformed)
		}
	}
	return s, nil
}
