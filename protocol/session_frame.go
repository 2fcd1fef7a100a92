package protocol

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// Session is one end of an established route session. It is not safe for
// concurrent use. Its state changes with every frame sealed or opened and
// must be persisted (MarshalBinary) before a sealed frame leaves the node:
// a sender that restarts from an older state would reuse message keys.
//
//	0      1        5          6         10             10+n        26+n
//	+------+--------+----------+---------+--------------+-----------+
//	| 0x22 | label  | hop byte | counter | ciphertext   | tag (16)  |
//	+------+--------+----------+---------+--------------+-----------+
//
// The hop byte holds the direction (bit 7, set towards the initiator), the
// control bit (bit 6) and the receiver index (bits 0..5), the position on
// the path of the node that should act on the frame. Relays rewrite the
// index, so the tag covers everything but it.
type Session struct {
	initiator bool
	mode      SessionMode
	label     PathLabel
	index     uint8 // own position on the path: 0 for the initiator, n for the responder
	remote    CompactIdentity
	created   Timestamp
	rekey     [32]byte
	phase     uint8 // key phase of frames sent (0 or 1); recv[phase] is the current receive chain
	send      sendChain
	recv      [2]recvChain
	rekeying  *[32]byte // initiator: the ephemeral seed of a rekey request without answer
	answered  []byte    // responder, memory only: the last rekey answer frame, resent on a repeated request

	// ad is scratch space for a frame's associated data (session_keys.go).
	ad [sessionHeaderSize]byte
}

type sendChain struct {
	ck [32]byte
	n  uint64
}

type recvChain struct {
	live    bool // a chain of the previous key phase is kept until the next rekey
	ck      [32]byte
	n       uint64       // next expected counter
	skipped []skippedKey // ascending counters, all < n, within the window
}

func newSession(initiator bool, m SessionMode, l PathLabel, index uint8, remote CompactIdentity, created Timestamp, k sessionKeys) *Session {
	s := &Session{initiator: initiator, mode: m, label: l, index: index, remote: remote, created: created}
	s.setKeys(k)
	return s
}

// setKeys starts the current key phase with fresh chains.
func (s *Session) setKeys(k sessionKeys) {
	s.rekey = k.rekey
	s.send = sendChain{ck: k.i2r}
	s.recv[s.phase] = recvChain{live: true, ck: k.r2i}
	if !s.initiator {
		s.send.ck, s.recv[s.phase].ck = k.r2i, k.i2r
	}
}

// Label is the session's path label.
func (s *Session) Label() PathLabel { return s.label }

// Remote is the other end's compact identity.
func (s *Session) Remote() CompactIdentity { return s.remote }

// Initiator reports whether this end started the session.
func (s *Session) Initiator() bool { return s.initiator }

// Mode is the session's handshake mode.
func (s *Session) Mode() SessionMode { return s.mode }

// Index is this end's position on the path (0 for the initiator, the
// number of hops for the responder).
func (s *Session) Index() uint8 { return s.index }

// Created is the init's timestamp.
func (s *Session) Created() Timestamp { return s.created }

// Sent is the number of frames sealed so far.
func (s *Session) Sent() uint64 { return s.send.n }

// Phase is the key phase of the frames this end sends (0 or 1); it
// changes at every rekey.
func (s *Session) Phase() uint8 { return s.phase }

// Received is the next counter expected from the other end in the
// current key phase.
func (s *Session) Received() uint64 { return s.recv[s.phase].n }

// sendHop is the hop byte of frames this end sends, but the control bit:
// the direction away from it and the index of the first node that way.
func (s *Session) sendHop() byte {
	if s.initiator {
		return 1
	}
	return hopTowardInitiator | (s.index - 1)
}

// recvHop is the hop byte, but the control bit, of frames meant for this end.
func (s *Session) recvHop() byte {
	if s.initiator {
		return hopTowardInitiator
	}
	return s.index
}

func sessionMsgKeys(mk [32]byte) (encKey, macKey []byte) {
	k, err := hkdf.Expand(sha256.New, mk[:], labelSessionMsgKey, 64)
	if err != nil {
		panic("protocol: hkdf.Expand: " + err.Error())
	}
	return k[:32], k[32:]
}

// sessionTag is the data frame's tag: everything but the receiver index
// and the tag itself.
func sessionTag(macKey, frame []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(frame[:5])
	m.Write([]byte{frame[5] &^ hopIndexMask})
	m.Write(frame[6:])
	return m.Sum(nil)[:sessionTagSize]
}

// Seal encrypts plaintext into a data frame (control: a session control
// message rather than an application message) and advances the sending
// chain. Persist the session before the frame leaves the node.
func (s *Session) Seal(control bool, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxSessionPlaintext {
		return nil, fmt.Errorf("session seal: %d bytes: %w", len(plaintext), ErrTooLarge)
	}
	if s.send.n >= uint64(^uint32(0)) {
		return nil, fmt.Errorf("session seal: counter exhausted, start a new session: %w", ErrLimit)
	}
	hop := s.sendHop() | s.phase*hopKeyPhase
	if control {
		hop |= hopControl
	}
	frame := make([]byte, sessionHeaderSize+len(plaintext), SessionFrameOverhead+len(plaintext))
	frame[0] = byte(KindSessionData)
	copy(frame[1:5], s.label[:])
	frame[5] = hop
	binary.BigEndian.PutUint32(frame[6:], uint32(s.send.n))
	var next [32]byte
	if s.mode.schedule3() {
		var mk [32]byte
		mk, next = ratchet3(s.send.ck)
		frame = seal3(mk, &s.ad, frame[:sessionHeaderSize], plaintext)
	} else {
		var mk [32]byte
		mk, next = ratchet(s.send.ck)
		encKey, macKey := sessionMsgKeys(mk)
		oneTimeXOR(encKey, frame[sessionHeaderSize:], plaintext)
		frame = append(frame, sessionTag(macKey, frame)...)
	}
	s.send.ck = next
	s.send.n++
	return frame, nil
}

// SessionHop is what a relay reads of a session frame (init, accept, data
// or reset): its label and hop byte, after checking the frame's kind and
// bounds. It never looks at the content.
type SessionHop struct {
	Kind             Kind
	Label            PathLabel
	TowardsInitiator bool
	Control          bool
	KeyPhase         uint8
	Index            uint8
}

// ParseSessionHop reads the label and hop byte of a session frame.
func ParseSessionHop(frame []byte) (SessionHop, error) {
	var h SessionHop
	if len(frame) < SessionResetSize {
		return h, fmt.Errorf("session frame: %d bytes: %w", len(frame), ErrTruncated)
	}
	h.Kind = Kind(frame[0])
	if err := checkSessionFrameSize(h.Kind, len(frame)); err != nil {
		return h, err
	}
	copy(h.Label[:], frame[1:5])
	hop := frame[5]
	h.TowardsInitiator, h.Control, h.Index = hop&hopTowardInitiator != 0, hop&hopControl != 0, hop&hopIndexMask
	if hop&hopKeyPhase != 0 {
		h.KeyPhase = 1
	}
	switch {
	case h.Label == PathLabel{}:
		return h, fmt.Errorf("session frame: zero label: %w", ErrMalformed)
	case hop&(hopControl|hopKeyPhase) != 0 && h.Kind != KindSessionData:
		return h, fmt.Errorf("session frame: hop byte 0x%02x on %v: %w", hop, h.Kind, ErrMalformed)
	}
	return h, nil
}

func checkSessionFrameSize(k Kind, n int) error {
	var ok bool
	switch k {
	case KindSessionInit:
		ok = n == SessionInitSize(SessionModeX25519) || n == SessionInitSize(SessionModeXWing)
	case KindSessionAccept:
		ok = n == SessionAcceptSize(SessionModeX25519) || n == SessionAcceptSize(SessionModeXWing)
	case KindSessionData:
		ok = n >= SessionFrameOverhead && n <= SessionFrameOverhead+MaxSessionPlaintext
	case KindSessionReset:
		ok = n == SessionResetSize
	default:
		return fmt.Errorf("session frame: %v: %w", k, ErrUnknownKind)
	}
	if !ok {
		return fmt.Errorf("session frame: %v of %d bytes: %w", k, n, ErrMalformed)
	}
	return nil
}

// SetSessionIndex rewrites the receiver index of a session frame in place:
// what a relay does before passing it on.
func SetSessionIndex(frame []byte, index uint8) error {
	if _, err := ParseSessionHop(frame); err != nil {
		return err
	}
	if index > MaxSessionHops {
		return fmt.Errorf("session frame: index %d: %w", index, ErrHopLimit)
	}
	frame[5] = frame[5]&^hopIndexMask | index
	return nil
}

// Open authenticates and decrypts a data frame meant for this end. It
// reports whether the frame is a control message. The session changes only
// if the frame is authentic and new; anything else (another label, another
// receiver index or direction, a forged, damaged, replayed or out-of-window
// frame) leaves it as it was. The plaintext is a new slice, aliasing
// neither frame nor the session: the caller may keep it.
func (s *Session) Open(frame []byte) (plaintext []byte, control bool, err error) {
	h, err := ParseSessionHop(frame)
	if err != nil {
		return nil, false, err
	}
	if h.Kind != KindSessionData {
		return nil, false, fmt.Errorf("session open: %v: %w", h.Kind, ErrUnknownKind)
	}
	if h.Label != s.label || frame[5]&^(hopControl|hopKeyPhase) != s.recvHop() {
		return nil, false, fmt.Errorf("session open: label %v hop 0x%02x: %w", h.Label, frame[5], ErrNotForUs)
	}
	c := &s.recv[h.KeyPhase]
	if !c.live {
		return nil, false, fmt.Errorf("session open: key phase %d retired: %w", h.KeyPhase, ErrReplay)
	}
	n := binary.BigEndian.Uint32(frame[6:10])
	pt, err := c.open(n, frame, s.mode.schedule3(), &s.ad)
	return pt, h.Control, err
}

// open is the replay window of docs/protocol.md sections 5 and 10.
func (c *recvChain) open(n uint32, frame []byte, v3 bool, ad *[sessionHeaderSize]byte) ([]byte, error) {
	step, openWith := ratchet, sessionOpen
	if v3 {
		step = ratchet3
		openWith = func(mk [32]byte, frame []byte) ([]byte, bool) { return open3(mk, ad, frame) }
	}
	if uint64(n) < c.n {
		i := slices.IndexFunc(c.skipped, func(k skippedKey) bool { return k.n == n })
		if i < 0 {
			return nil, fmt.Errorf("session frame %d (next %d): %w", n, c.n, ErrReplay)
		}
		pt, ok := openWith(c.skipped[i].mk, frame)
		if !ok {
			return nil, fmt.Errorf("session frame %d: %w", n, ErrDecrypt)
		}
		c.skipped = slices.Delete(c.skipped, i, i+1)
		return pt, nil
	}
	if uint64(n)-c.n > LiteMaxSkip {
		return nil, fmt.Errorf("session frame %d is %d ahead of %d: %w", n, uint64(n)-c.n, c.n, ErrLimit)
	}
	ck, skipped := c.ck, []skippedKey(nil)
	for m := c.n; m < uint64(n); m++ {
		var mk [32]byte
		mk, ck = step(ck)
		if uint64(n)+1-m <= LiteReplayWindow {
			skipped = append(skipped, skippedKey{n: uint32(m), mk: mk})
		}
	}
	mk, next := step(ck)
	pt, ok := openWith(mk, frame)
	if !ok {
		return nil, fmt.Errorf("session frame %d: %w", n, ErrDecrypt)
	}
	c.ck, c.n = next, uint64(n)+1
	c.skipped = append(c.skipped, skipped...)
	cut := 0
	for cut < len(c.skipped) && c.n-uint64(c.skipped[cut].n) > LiteReplayWindow {
		cut++
	}
	c.skipped = slices.Delete(c.skipped, 0, cut)
	return pt, nil
}

func sessionOpen(mk [32]byte, frame []byte) ([]byte, bool) {
	encKey, macKey := sessionMsgKeys(mk)
	body := frame[:len(frame)-sessionTagSize]
	if !hmac.Equal(sessionTag(macKey, body), frame[len(body):]) {
		return nil, false
	}
	pt := make([]byte, len(body)-sessionHeaderSize)
	oneTimeXOR(encKey, pt, body[sessionHeaderSize:])
	return pt, true
}

// AppendSessionReset appends a reset for label, sent towards the given
// direction with the given receiver index.
func AppendSessionReset(b []byte, l PathLabel, towardsInitiator bool, index uint8) []byte {
	hop := index & hopIndexMask
	if towardsInitiator {
		hop |= hopTowardInitiator
	}
	b = append(b, byte(KindSessionReset))
	b = append(b, l[:]...)
	return append(b, hop)
}

// ParseSessionReset decodes a reset strictly.
func ParseSessionReset(b []byte) (SessionHop, error) {
	if len(b) > 0 && Kind(b[0]) != KindSessionReset {
		return SessionHop{}, fmt.Errorf("session reset: %v: %w", Kind(b[0]), ErrUnknownKind)
	}
	return ParseSessionHop(b)
}
