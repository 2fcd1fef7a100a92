package routing

// seenCache is a bounded set of recently seen message keys (envelope IDs,
// channel dedup keys, path request IDs). It forgets the oldest key when full,
// so memory stays fixed however much traffic passes; a duplicate older than
// the cache can slip through, which the receiver's delivered set and the hop
// limit make harmless.
type seenCache struct {
	m    map[[16]byte]struct{}
	ring [][16]byte
	next int
}

func newSeenCache(size int) *seenCache {
	return &seenCache{m: make(map[[16]byte]struct{}, size), ring: make([][16]byte, 0, size)}
}

func (s *seenCache) contains(k [16]byte) bool {
	_, ok := s.m[k]
	return ok
}

// add records k and reports whether it was new.
func (s *seenCache) add(k [16]byte) bool {
	if _, ok := s.m[k]; ok {
		return false
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, k)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % len(s.ring)
	}
	s.m[k] = struct{}{}
	return true
}

func (s *seenCache) len() int { return len(s.m) }

func channelKey(id [12]byte) [16]byte {
	var k [16]byte
	k[0] = 'c'
	copy(k[4:], id[:])
	return k
}

func pathRequestKey(id [8]byte) [16]byte {
	var k [16]byte
	k[0] = 'p'
	copy(k[8:], id[:])
	return k
}
