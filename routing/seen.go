package routing

import (
	"crypto/sha256"
	"time"
)

// seenCache is a bounded set of recently seen envelope keys (channel frames
// have floodSeen; path requests have their own, see pathreq.go). It forgets
// the oldest key when full, so memory stays fixed however much traffic
// passes; a duplicate older than the cache can slip through, which the receiver's delivered set and the hop
// limit make harmless.
type seenCache struct {
	m map[[16]byte]time.Time // when the key was last let through
	// verified holds, for envelopes whose signature this node checked, a
	// digest of the signed bytes, so a later copy (an end-to-end retry) is
	// not verified again: each envelope is verified once per node.
	verified map[[16]byte][16]byte
	ring     [][16]byte
	next     int
	size     int
}

// newSeenCache makes a cache of up to size keys. It grows as keys arrive:
// a quiet node (or each of thousands in a simulation) does not pay for the
// full size up front.
func newSeenCache(size int) *seenCache {
	return &seenCache{m: make(map[[16]byte]time.Time), verified: make(map[[16]byte][16]byte), size: size}
}

// seenAt returns when k was last let through.
func (s *seenCache) seenAt(k [16]byte) (time.Time, bool) {
	t, ok := s.m[k]
	return t, ok
}

// touch records that k was let through again at t.
func (s *seenCache) touch(k [16]byte, t time.Time) {
	if _, ok := s.m[k]; ok {
		s.m[k] = t
	}
}

// addAt records k as let through at t and reports whether it was new.
func (s *seenCache) addAt(k [16]byte, t time.Time) bool {
	if _, ok := s.m[k]; ok {
		return false
	}
	if len(s.ring) < s.size {
		s.ring = append(s.ring, k)
	} else {
		delete(s.m, s.ring[s.next])
		delete(s.verified, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % len(s.ring)
	}
	s.m[k] = t
	return true
}

func (s *seenCache) len() int { return len(s.m) }

// envelopeDigest hashes an encoded envelope without its hop count (the one
// byte forwarders change), so every copy of one envelope has one digest.
func envelopeDigest(raw []byte) [16]byte {
	h := sha256.New()
	h.Write(raw[:4])
	h.Write(raw[5:])
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}

// markVerified records the digest of a verified envelope seen under k.
func (s *seenCache) markVerified(k [16]byte, raw []byte) {
	if _, ok := s.m[k]; ok {
		s.verified[k] = envelopeDigest(raw)
	}
}

// wasVerified reports whether raw is a copy of an envelope already verified.
func (s *seenCache) wasVerified(k [16]byte, raw []byte) bool {
	d, ok := s.verified[k]
	return ok && d == envelopeDigest(raw)
}
