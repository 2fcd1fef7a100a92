package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"time"
)

// Bounds of one key phase: the engine asks for a rekey when a phase has
// carried this many frames in either direction or is this old.
const (
	SessionRekeyFrames = 1 << 16
	SessionRekeyAge    = 24 * time.Hour
)

const sessionRekeySize = 1 + x25519KeySize

// SessionControlType returns the type of a control plaintext.
func SessionControlType(pt []byte) (byte, error) {
	if len(pt) == 0 {
		return 0, fmt.Errorf("session control: %w", ErrTruncated)
	}
	if pt[0] < SessionCtlAck || pt[0] > SessionCtlClose {
		return 0, fmt.Errorf("session control: type %d: %w", pt[0], ErrUnknownKind)
	}
	return pt[0], nil
}

// StartRekey seals a rekey request (a fresh X25519 public key). Only the
// initiator starts rekeys, so the two ends never cross requests. Calling it
// again before the answer sends the same key in a new frame. Persist the
// session before the frame leaves.
func (s *Session) StartRekey(rand io.Reader) ([]byte, error) {
	if !s.initiator {
		return nil, fmt.Errorf("session rekey: only the initiator asks: %w", ErrMalformed)
	}
	if s.rekeying == nil {
		var seed [32]byte
		if _, err := io.ReadFull(rand, seed[:]); err != nil {
			return nil, fmt.Errorf("session rekey: randomness: %w", err)
		}
		s.rekeying = &seed
	}
	pub, err := ephemeralPublic(SessionModeX25519, *s.rekeying)
	if err != nil {
		return nil, err
	}
	return s.Seal(true, append([]byte{SessionCtlRekeyAsk}, pub...))
}

func parseRekey(pt []byte, typ byte) ([]byte, error) {
	if len(pt) != sessionRekeySize {
		return nil, fmt.Errorf("session rekey: %d bytes: %w", len(pt), ErrMalformed)
	}
	if pt[0] != typ {
		return nil, fmt.Errorf("session rekey: type %d: %w", pt[0], ErrUnknownKind)
	}
	return pt[1:], nil
}

// AnswerRekey answers a rekey request (the plaintext of a control frame of
// type SessionCtlRekeyAsk) with a sealed answer frame, sent in the current
// key phase, and then moves to the next phase. Frames of the previous phase
// still open until the next rekey, so frames in flight are not lost. A
// repeated request for the same key gets the same answer frame again.
func (s *Session) AnswerRekey(rand io.Reader, pt []byte) ([]byte, error) {
	if s.initiator {
		return nil, fmt.Errorf("session rekey: request at the initiator: %w", ErrMalformed)
	}
	theirs, err := parseRekey(pt, SessionCtlRekeyAsk)
	if err != nil {
		return nil, err
	}
	if s.answered != nil && bytes.Equal(s.answered[:x25519KeySize], theirs) {
		return s.answered[x25519KeySize:], nil
	}
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("session rekey: randomness: %w", err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return nil, fmt.Errorf("session rekey: %w", err)
	}
	dh, err := x25519(priv, theirs)
	if err != nil {
		return nil, err
	}
	mine := priv.PublicKey().Bytes()
	frame, err := s.Seal(true, append([]byte{SessionCtlRekeyAnswer}, mine...))
	if err != nil {
		return nil, err
	}
	s.nextPhase(rekeyKeys(s.rekey, dh, theirs, mine))
	s.answered = append(append([]byte(nil), theirs...), frame...)
	return frame, nil
}

// FinishRekey completes the initiator's rekey with the answer (the
// plaintext of a control frame of type SessionCtlRekeyAnswer).
func (s *Session) FinishRekey(pt []byte) error {
	if !s.initiator || s.rekeying == nil {
		return fmt.Errorf("session rekey: no request pending: %w", ErrReplay)
	}
	theirs, err := parseRekey(pt, SessionCtlRekeyAnswer)
	if err != nil {
		return err
	}
	priv, err := ecdh.X25519().NewPrivateKey(s.rekeying[:])
	if err != nil {
		return fmt.Errorf("session rekey: %w", err)
	}
	dh, err := x25519(priv, theirs)
	if err != nil {
		return err
	}
	s.nextPhase(rekeyKeys(s.rekey, dh, priv.PublicKey().Bytes(), theirs))
	s.rekeying = nil
	return nil
}

// nextPhase moves to the other key phase with fresh chains. The receive
// chain of the phase being left stays live; the one before it is dropped.
func (s *Session) nextPhase(k sessionKeys) {
	s.phase ^= 1
	s.setKeys(k)
}

// rekeyKeys derives the next phase from the current rekey key and the
// exchange, so a compromise of the session state before the rekey does not
// reveal the frames after it.
func rekeyKeys(rekey [32]byte, dh, initiatorPub, responderPub []byte) sessionKeys {
	ikm := make([]byte, 0, len(dh)+2*x25519KeySize)
	ikm = append(append(append(ikm, dh...), initiatorPub...), responderPub...)
	prk, err := hkdf.Extract(sha256.New, ikm, rekey[:])
	if err != nil {
		panic("protocol: hkdf.Extract: " + err.Error())
	}
	return expandSessionKeys(prk)
}
