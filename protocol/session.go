package protocol

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
)

// Route sessions (docs/protocol.md section 10) carry unicast between two
// nodes any number of hops apart. One round trip (SessionInit, SessionAccept)
// sets up the keys, with an ephemeral exchange for forward secrecy against a
// later compromise of the long-term keys, and the path: every relay on the
// way records the init's path label, so data frames need no address. A data
// frame spends 26 bytes (kind, label, hop byte, counter, tag), 32 with the
// message number of an application message.

// SessionMode selects the ephemeral exchange of a route session.
type SessionMode byte

// The modes: what each guarantees is in docs/protocol.md section 10. The
// mode also names the data frames' key schedule: modes 3 and 4 use key
// schedule 3 (session_keys.go), modes 1 and 2 schedule 2. This version
// starts sessions in modes 3 and 4 and still accepts 1 and 2 from older
// initiators; an older responder refuses an init in mode 3 or 4 as an
// unknown mode, and the initiator's engine falls back to envelopes.
const (
	// SessionModeX25519V2 and SessionModeXWingV2 are the exchanges of
	// modes 3 and 4 with key schedule 2: what older versions start.
	SessionModeX25519V2 SessionMode = 1
	SessionModeXWingV2  SessionMode = 2
	// SessionModeX25519 adds an X25519 exchange (32 bytes each way): for
	// links that pay by the byte (LoRa).
	SessionModeX25519 SessionMode = 3
	// SessionModeXWing adds an X-Wing exchange (1,216 + 1,120 bytes): full
	// post-quantum forward secrecy, for IP links.
	SessionModeXWing SessionMode = 4
)

// xwing reports whether the mode's ephemeral exchange is X-Wing.
func (m SessionMode) xwing() bool { return m == SessionModeXWing || m == SessionModeXWingV2 }

// schedule3 reports whether data frames use key schedule 3.
func (m SessionMode) schedule3() bool { return m == SessionModeX25519 || m == SessionModeXWing }

// PathLabel names a route session on every node of its path. The initiator
// draws it at random; it is never zero.
type PathLabel [4]byte

func (l PathLabel) String() string { return hex.EncodeToString(l[:]) }

// Route session sizes and bounds.
const (
	// MaxSessionHops is the largest receiver index a hop byte can carry.
	MaxSessionHops = 31
	// SessionFrameOverhead is kind, label, hop byte, counter and tag.
	SessionFrameOverhead = sessionHeaderSize + sessionTagSize
	// SessionNumberSize is the size of an application message's number.
	SessionNumberSize = 6
	// SessionMessageOverhead is the whole on-air overhead of one
	// application message in a data frame.
	SessionMessageOverhead = SessionFrameOverhead + SessionNumberSize
	// MaxSessionPlaintext bounds the plaintext of one data frame.
	MaxSessionPlaintext = 16 * 1024
	// SessionResetSize is the size of a session reset.
	SessionResetSize = 6
	// DefaultSessionInitMaxAge is how far an init's timestamp may be from
	// the responder's clock, either way.
	DefaultSessionInitMaxAge = 10 * time.Minute

	sessionHeaderSize   = 1 + 4 + 1 + 4
	sessionTagSize      = 16
	sessionInitHeadSize = 1 + 4 + 1 + AddressSize + 1 + 4
	x25519KeySize       = 32
	hpkeTagSize         = 16
)

const (
	labelSessionInit       = "meshd/session-init/v2"
	labelSessionHPKE       = "meshd/session/v2"
	labelSessionStatic     = "meshd/session/v2 static"
	labelSessionTranscript = "meshd/session-transcript/v2"
	labelSessionMsgKey     = "meshd/session-msg/v2"
	labelSessionNumber     = "meshd/session-msg-key/v2"
)

// Hop byte bits.
const (
	hopTowardInitiator = 0x80
	hopControl         = 0x40
	hopKeyPhase        = 0x20
	hopIndexMask       = 0x1F
)

// ephemeralSize is the size of the initiator's ephemeral public key.
func (m SessionMode) ephemeralSize() int {
	if m.xwing() {
		return KEMPublicKeySize
	}
	return x25519KeySize
}

// answerSize is the size of the responder's ephemeral contribution.
func (m SessionMode) answerSize() int {
	if m.xwing() {
		return KEMCiphertextSize
	}
	return x25519KeySize
}

func (m SessionMode) valid() bool { return m >= SessionModeX25519V2 && m <= SessionModeXWing }

// sealedSize is the size of an init's encrypted part in mode m.
func (m SessionMode) sealedSize() int {
	return CompactIdentitySize + m.ephemeralSize() + SignatureSize + hpkeTagSize
}

// SessionInitSize is the encoded size of an init in mode m.
func SessionInitSize(m SessionMode) int {
	return sessionInitHeadSize + KEMCiphertextSize + m.sealedSize()
}

// SessionAcceptSize is the encoded size of an accept in mode m.
func SessionAcceptSize(m SessionMode) int { return 6 + m.answerSize() + sessionTagSize }

// SessionInit starts a route session (kind 0x20). Sealed holds, encrypted
// to the responder, the initiator's compact identity, its ephemeral public
// key and its signature, so relays learn only the responder.
type SessionInit struct {
	Label     PathLabel
	Index     uint8 // receiver index: the only field relays change
	Responder Address
	Mode      SessionMode
	Timestamp Timestamp
	Enc       [KEMCiphertextSize]byte
	Sealed    []byte
}

// header is the init's authenticated header: bytes 0..4 and 6..26.
func (in *SessionInit) header() []byte {
	b := make([]byte, 0, sessionInitHeadSize-1)
	b = append(b, byte(KindSessionInit))
	b = append(b, in.Label[:]...)
	b = append(b, in.Responder[:]...)
	b = append(b, byte(in.Mode))
	return appendTimestamp(b, in.Timestamp)
}

// AppendBinary appends the encoded init to b.
func (in *SessionInit) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(KindSessionInit))
	b = append(b, in.Label[:]...)
	b = append(b, in.Index)
	b = append(b, in.Responder[:]...)
	b = append(b, byte(in.Mode))
	b = appendTimestamp(b, in.Timestamp)
	b = append(b, in.Enc[:]...)
	return append(b, in.Sealed...), nil
}

// MarshalBinary encodes the init.
func (in *SessionInit) MarshalBinary() ([]byte, error) {
	return in.AppendBinary(make([]byte, 0, SessionInitSize(in.Mode)))
}

// ParseSessionInit decodes an init strictly; it does not verify it.
func ParseSessionInit(b []byte) (*SessionInit, error) {
	if len(b) > SessionInitSize(SessionModeXWing) {
		return nil, fmt.Errorf("session init: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := newReader("session init", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindSessionInit {
		return nil, fmt.Errorf("session init: %v: %w", k, ErrUnknownKind)
	}
	in := &SessionInit{}
	r.copyInto(in.Label[:], "label")
	in.Index = r.u8("hop byte")
	r.copyInto(in.Responder[:], "responder")
	in.Mode = SessionMode(r.u8("mode"))
	in.Timestamp = Timestamp(r.u32("timestamp"))
	if err := r.err; err != nil {
		return nil, err
	}
	if err := checkInitHead(in); err != nil {
		return nil, err
	}
	r.copyInto(in.Enc[:], "encapsulated key")
	in.Sealed = r.bytes(in.Mode.sealedSize(), "sealed part")
	if err := r.done(); err != nil {
		return nil, err
	}
	in.Sealed = append([]byte(nil), in.Sealed...)
	return in, nil
}

func checkInitHead(in *SessionInit) error {
	switch {
	case in.Label == PathLabel{}:
		return fmt.Errorf("session init: zero label: %w", ErrMalformed)
	case in.Index == 0 || in.Index > MaxSessionHops:
		return fmt.Errorf("session init: hop byte 0x%02x: %w", in.Index, ErrMalformed)
	case !in.Mode.valid():
		return fmt.Errorf("session init: mode %d: %w", in.Mode, ErrUnknownKind)
	}
	return nil
}

// SessionAccept is the responder's answer (kind 0x21): its ephemeral
// contribution and a tag that proves it could decapsulate the init.
type SessionAccept struct {
	Label     PathLabel
	Index     uint8 // receiver index (towards the initiator), changed by relays
	Ephemeral []byte
	Tag       [sessionTagSize]byte
}

// AppendBinary appends the encoded accept to b.
func (a *SessionAccept) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(KindSessionAccept))
	b = append(b, a.Label[:]...)
	b = append(b, hopTowardInitiator|a.Index)
	b = append(b, a.Ephemeral...)
	return append(b, a.Tag[:]...), nil
}

// MarshalBinary encodes the accept.
func (a *SessionAccept) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, 6+len(a.Ephemeral)+sessionTagSize))
}

// Mode is the mode the accept's size implies (its key schedule is the
// init's: the accept does not carry it).
func (a *SessionAccept) Mode() SessionMode {
	if len(a.Ephemeral) == KEMCiphertextSize {
		return SessionModeXWing
	}
	return SessionModeX25519
}

// ParseSessionAccept decodes an accept strictly; its size gives its mode.
func ParseSessionAccept(b []byte) (*SessionAccept, error) {
	n := len(b)
	if n != SessionAcceptSize(SessionModeX25519) && n != SessionAcceptSize(SessionModeXWing) {
		if n < SessionAcceptSize(SessionModeX25519) {
			return nil, fmt.Errorf("session accept: %d bytes: %w", n, ErrTruncated)
		}
		return nil, fmt.Errorf("session accept: %d bytes: %w", n, ErrMalformed)
	}
	if Kind(b[0]) != KindSessionAccept {
		return nil, fmt.Errorf("session accept: %v: %w", Kind(b[0]), ErrUnknownKind)
	}
	a := &SessionAccept{}
	copy(a.Label[:], b[1:5])
	hop := b[5]
	if hop&^hopIndexMask != hopTowardInitiator || a.Label == (PathLabel{}) {
		return nil, fmt.Errorf("session accept: hop byte 0x%02x, label %v: %w", hop, a.Label, ErrMalformed)
	}
	a.Index = hop & hopIndexMask
	a.Ephemeral = append([]byte(nil), b[6:n-sessionTagSize]...)
	copy(a.Tag[:], b[n-sessionTagSize:])
	return a, nil
}

// PendingSession is the initiator's side of a handshake waiting for its
// accept. It holds the ephemeral private key, which Complete erases.
type PendingSession struct {
	label    PathLabel
	mode     SessionMode
	remote   CompactIdentity
	created  Timestamp
	initHash []byte // running transcript: the init with its hop byte zeroed
	ssStatic [32]byte
	ephSeed  [32]byte
	done     bool
}

// Label is the path label of the pending session.
func (p *PendingSession) Label() PathLabel { return p.label }

// StartSession creates an init to peer in mode m and the state that
// completes it. rand supplies the label, the ephemeral key and the KEM
// encapsulation.
func StartSession(rand io.Reader, me *Identity, peer *PublicIdentity, m SessionMode, now Timestamp) (*PendingSession, *SessionInit, error) {
	if !m.valid() {
		return nil, nil, fmt.Errorf("session start: mode %d: %w", m, ErrUnknownKind)
	}
	in := &SessionInit{Index: 1, Responder: peer.Address(), Mode: m, Timestamp: now}
	p := &PendingSession{mode: m, remote: peer.Compact(), created: now}
	if err := readLabel(rand, &in.Label); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(rand, p.ephSeed[:]); err != nil {
		return nil, nil, fmt.Errorf("session start: ephemeral key: %w", err)
	}
	ephPub, err := ephemeralPublic(m, p.ephSeed)
	if err != nil {
		return nil, nil, err
	}
	if err := sealInit(rand, me, peer, in, ephPub, &p.ssStatic); err != nil {
		return nil, nil, err
	}
	p.label = in.Label
	p.initHash = initTranscript(in)
	return p, in, nil
}

func readLabel(rand io.Reader, l *PathLabel) error {
	for *l == (PathLabel{}) {
		if _, err := io.ReadFull(rand, l[:]); err != nil {
			return fmt.Errorf("session start: label: %w", err)
		}
	}
	return nil
}

// ephemeralPublic derives the initiator's ephemeral public key from seed.
// Keys come from the caller's random source, not crypto/rand, so runs
// replay from a seed.
func ephemeralPublic(m SessionMode, seed [32]byte) ([]byte, error) {
	if m.xwing() {
		_, pk := xwing.DeriveKeyPair(seed[:])
		b := make([]byte, KEMPublicKeySize)
		pk.Pack(b)
		return b, nil
	}
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return nil, fmt.Errorf("session: X25519 key: %w", err)
	}
	return k.PublicKey().Bytes(), nil
}

// sealInit encapsulates to peer, signs and seals the init's secret part.
func sealInit(rand io.Reader, me *Identity, peer *PublicIdentity, in *SessionInit, ephPub []byte, ss *[32]byte) error {
	head := in.header()
	sender, err := sealSuite.NewSender(peer.kem, append([]byte(labelSessionHPKE), head...))
	if err != nil {
		return fmt.Errorf("session start: %w", err)
	}
	enc, sealer, err := sender.Setup(rand)
	if err != nil {
		return fmt.Errorf("session start: HPKE setup: %w", err)
	}
	copy(in.Enc[:], enc)
	pt := me.Compact().appendTo(make([]byte, 0, in.Mode.sealedSize()))
	pt = append(pt, ephPub...)
	pt = append(pt, me.signLabelled(labelSessionInit, initSigned(head, in.Enc[:], ephPub))...)
	in.Sealed, err = sealer.Seal(pt, head)
	if err != nil {
		return fmt.Errorf("session start: seal: %w", err)
	}
	copy(ss[:], sealer.Export([]byte(labelSessionStatic), 32))
	return nil
}

func initSigned(head, enc, ephPub []byte) []byte {
	b := make([]byte, 0, len(head)+len(enc)+len(ephPub))
	return append(append(append(b, head...), enc...), ephPub...)
}

// initTranscript is the init as both ends hash it: hop byte zeroed.
func initTranscript(in *SessionInit) []byte {
	c := *in
	c.Index = 0
	b, _ := c.MarshalBinary()
	return b
}

// AcceptSession verifies an init addressed to me and derives the
// responder's end of the session and the accept to send back. Checks run
// cheapest first: address and time before the decapsulation, the
// decapsulation before the signature. The caller must first refuse an init
// whose label it holds (a replay) and apply its rate limit. rand supplies
// the responder's ephemeral contribution.
func AcceptSession(rand io.Reader, me *Identity, in *SessionInit, now time.Time, maxAge time.Duration) (*Session, *SessionAccept, error) {
	if err := checkInitCheap(me, in, now, maxAge); err != nil {
		return nil, nil, err
	}
	initiator, ephPub, ssStatic, err := openInit(me, in)
	if err != nil {
		return nil, nil, err
	}
	ssEph, answer, err := answerEphemeral(rand, in.Mode, ephPub)
	if err != nil {
		return nil, nil, err
	}
	acc := &SessionAccept{Label: in.Label, Index: in.Index - 1, Ephemeral: answer}
	keys := deriveSessionKeys(initTranscript(in), acc, ssStatic, ssEph)
	copy(acc.Tag[:], keys.tag[:sessionTagSize])
	s := newSession(false, in.Mode, in.Label, in.Index, initiator, in.Timestamp, keys)
	return s, acc, nil
}

func checkInitCheap(me *Identity, in *SessionInit, now time.Time, maxAge time.Duration) error {
	if maxAge <= 0 {
		maxAge = DefaultSessionInitMaxAge
	}
	if err := checkInitHead(in); err != nil {
		return err
	}
	if in.Responder != me.Address() {
		return fmt.Errorf("session init for %v: %w", in.Responder, ErrNotForUs)
	}
	if len(in.Sealed) != in.Mode.sealedSize() {
		return fmt.Errorf("session init: sealed part of %d bytes: %w", len(in.Sealed), ErrMalformed)
	}
	t := in.Timestamp.Time()
	if t.Before(now.Add(-maxAge)) {
		return fmt.Errorf("session init at %v: %w", t, ErrExpired)
	}
	if t.After(now.Add(maxAge)) {
		return fmt.Errorf("session init at %v: %w", t, ErrFromFuture)
	}
	return nil
}

// openInit decapsulates and opens an init and verifies its signature.
func openInit(me *Identity, in *SessionInit) (initiator CompactIdentity, ephPub []byte, ss [32]byte, err error) {
	head := in.header()
	receiver, err := sealSuite.NewReceiver(me.kem, append([]byte(labelSessionHPKE), head...))
	if err != nil {
		return initiator, nil, ss, fmt.Errorf("session init: %w", err)
	}
	opener, err := receiver.Setup(in.Enc[:])
	if err != nil {
		return initiator, nil, ss, fmt.Errorf("session init: %w: %v", ErrDecrypt, err)
	}
	pt, err := opener.Open(in.Sealed, head)
	if err != nil {
		return initiator, nil, ss, fmt.Errorf("session init: %w: %v", ErrDecrypt, err)
	}
	r := newReader("session init plaintext", pt)
	initiator = r.compactIdentity("initiator")
	ephPub = r.bytes(in.Mode.ephemeralSize(), "ephemeral key")
	sig := r.bytes(SignatureSize, "signature")
	if err := r.done(); err != nil {
		return initiator, nil, ss, err
	}
	if !initiator.verify(labelSessionInit, initSigned(head, in.Enc[:], ephPub), sig) {
		return initiator, nil, ss, fmt.Errorf("session init from %v: %w", initiator.Address(), ErrBadSignature)
	}
	copy(ss[:], opener.Export([]byte(labelSessionStatic), 32))
	return initiator, ephPub, ss, nil
}

// answerEphemeral computes the responder's ephemeral secret and what it
// sends for it; its own ephemeral private key never leaves this function.
func answerEphemeral(rand io.Reader, m SessionMode, ephPub []byte) (ss, answer []byte, err error) {
	if m.xwing() {
		var seed [xwing.EncapsulationSeedSize]byte
		if _, err := io.ReadFull(rand, seed[:]); err != nil {
			return nil, nil, fmt.Errorf("session accept: randomness: %w", err)
		}
		ss, ct, err := xwing.Encapsulate(ephPub, seed[:])
		if err != nil {
			return nil, nil, fmt.Errorf("session init: ephemeral key: %w: %v", ErrMalformed, err)
		}
		return ss, ct, nil
	}
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, nil, fmt.Errorf("session accept: randomness: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return nil, nil, fmt.Errorf("session accept: X25519 key: %w", err)
	}
	ss, err = x25519(k, ephPub)
	if err != nil {
		return nil, nil, err
	}
	return ss, k.PublicKey().Bytes(), nil
}

func x25519(k *ecdh.PrivateKey, peer []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("session: X25519 key: %w: %v", ErrMalformed, err)
	}
	ss, err := k.ECDH(pub)
	if err != nil {
		// A low-order point gives an all-zero secret; ECDH refuses it.
		return nil, fmt.Errorf("session: X25519: %w: %v", ErrMalformed, err)
	}
	return ss, nil
}

// Complete checks the accept's tag and derives the initiator's end of the
// session. A wrong accept (bad tag, other label, other mode) changes
// nothing, so the genuine one can still complete it; a completed pending
// session has erased its ephemeral key and cannot complete again.
func (p *PendingSession) Complete(acc *SessionAccept) (*Session, error) {
	if p.done {
		return nil, fmt.Errorf("session accept: already completed: %w", ErrReplay)
	}
	if acc.Label != p.label || acc.Index != 0 || len(acc.Ephemeral) != p.mode.answerSize() {
		return nil, fmt.Errorf("session accept for %v (mode %d, index %d): %w", acc.Label, acc.Mode(), acc.Index, ErrNotForUs)
	}
	ssEph, err := p.ephemeralSecret(acc.Ephemeral)
	if err != nil {
		return nil, err
	}
	keys := deriveSessionKeys(p.initHash, acc, p.ssStatic, ssEph)
	if !hmac.Equal(keys.tag[:sessionTagSize], acc.Tag[:]) {
		return nil, fmt.Errorf("session accept for %v: %w", acc.Label, ErrDecrypt)
	}
	p.ephSeed, p.ssStatic, p.done = [32]byte{}, [32]byte{}, true
	return newSession(true, p.mode, p.label, 0, p.remote, p.created, keys), nil
}

func (p *PendingSession) ephemeralSecret(answer []byte) ([]byte, error) {
	if p.mode.xwing() {
		return xwing.Decapsulate(answer, p.ephSeed[:]), nil
	}
	k, err := ecdh.X25519().NewPrivateKey(p.ephSeed[:])
	if err != nil {
		return nil, fmt.Errorf("session: X25519 key: %w", err)
	}
	return x25519(k, answer)
}

// sessionKeys is what the handshake yields: the accept's tag and the keys
// the session starts from.
type sessionKeys struct {
	tag, i2r, r2i, rekey [32]byte
}

// deriveSessionKeys is the key schedule of docs/protocol.md section 10.
func deriveSessionKeys(initTranscript []byte, acc *SessionAccept, ssStatic [32]byte, ssEph []byte) sessionKeys {
	h := sha256.New()
	h.Write([]byte(labelSessionTranscript))
	h.Write(initTranscript)
	h.Write([]byte{byte(KindSessionAccept)})
	h.Write(acc.Label[:])
	h.Write(acc.Ephemeral)
	th := h.Sum(nil)
	prk, err := hkdf.Extract(sha256.New, append(ssStatic[:], ssEph...), th)
	if err != nil {
		panic("protocol: hkdf.Extract: " + err.Error())
	}
	confirm := hkdfLabel(prk, "confirm")
	k := expandSessionKeys(prk)
	m := hmac.New(sha256.New, confirm[:])
	m.Write(th)
	copy(k.tag[:], m.Sum(nil))
	return k
}

// expandSessionKeys derives a key phase's chains and the next rekey key.
func expandSessionKeys(prk []byte) sessionKeys {
	return sessionKeys{i2r: hkdfLabel(prk, "i2r chain"), r2i: hkdfLabel(prk, "r2i chain"), rekey: hkdfLabel(prk, "rekey")}
}

func hkdfLabel(prk []byte, label string) (k [32]byte) {
	b, err := hkdf.Expand(sha256.New, prk, label, 32)
	if err != nil {
		// Expand fails only for lengths over 255*32; 32 is constant.
		panic("protocol: hkdf.Expand: " + err.Error())
	}
	copy(k[:], b)
	return k
}
