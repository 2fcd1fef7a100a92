package routing

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"

	"meshd.dev/meshd/protocol"
)

// idSet is the path request dedup space: the last pathReqSeenSize keys in
// a ring, found through an open-addressing table of the keys as uint64s,
// each with a small tag (for path requests, the most hops left of a copy
// taken, pathreq.go).
// It replaces a map of 8-byte keys, whose look-ups were the largest
// single cost of a 10,000-node simulation: a table of plain words is
// half the memory and one cache line per look-up.
//
// The slot of an ID comes from a hash keyed with a secret of the node
// (derived from its signing key, so no random draw): requests are chosen
// by neighbours, and IDs picked to pile onto one slot would otherwise turn
// each look-up into a walk over the whole table.
type idSet struct {
	slots []uint64 // 0 is empty; key 0 is kept in zero
	tags  []uint8  // the tag of the key in the same slot
	ring  []uint64 // insertion order, for eviction
	next  int      // oldest ring entry once the ring is full
	zero  bool
	ztag  uint8 // key 0's tag
	k0    uint64
	k1    uint64
}

// idSetMinSlots is the first table size: most nodes of a large simulation
// see a few hundred requests at most.
const idSetMinSlots = 64

// newIDSet returns an empty set keyed from id's signing key.
func newIDSet(id *protocol.Identity) idSet {
	k, err := hkdf.Key(sha256.New, id.SigningKey().Seed(), nil, "meshd/path-request-slots/v1", 16)
	if err != nil {
		panic("routing: hkdf: " + err.Error())
	}
	return idSet{k0: binary.LittleEndian.Uint64(k), k1: binary.LittleEndian.Uint64(k[8:]) | 1}
}

// home is v's first slot.
func (s *idSet) home(v uint64) int {
	h := (v ^ s.k0) * (s.k1 | 1) // a zero set (tests) has no key
	h ^= h >> 31
	h *= 0x9e3779b97f4a7c15
	h ^= h >> 29
	return int(h & uint64(len(s.slots)-1))
}

// len is the number of IDs held.
func (s *idSet) len() int { return len(s.ring) }

// find returns v's slot, or the empty slot where it would go.
func (s *idSet) find(v uint64) (int, bool) {
	mask := len(s.slots) - 1
	for i := s.home(v); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case v:
			return i, true
		case 0:
			return i, false
		}
	}
}

// raise records v with tag if v is new (added), or raises v's tag to tag
// if that is higher by at least margin (raised; a margin of 0 counts as
// 1); otherwise it changes nothing. The oldest key goes when the space is
// full.
func (s *idSet) raise(v uint64, tag, margin uint8) (added, raised bool) {
	if v == 0 {
		if s.zero {
			if !higher(s.ztag, tag, margin) {
				return false, false
			}
			s.ztag = tag
			return false, true
		}
	} else {
		if s.slots == nil {
			s.slots = make([]uint64, idSetMinSlots)
			s.tags = make([]uint8, idSetMinSlots)
		}
		if i, ok := s.find(v); ok {
			if !higher(s.tags[i], tag, margin) {
				return false, false
			}
			s.tags[i] = tag
			return false, true
		}
	}
	if len(s.ring) < pathReqSeenSize {
		s.ring = append(s.ring, v)
	} else {
		s.remove(s.ring[s.next])
		s.ring[s.next] = v
		s.next = (s.next + 1) % len(s.ring)
	}
	s.insert(v, tag)
	return true, false
}

// higher reports whether tag raises old by at least margin (and by at
// least one).
func higher(old, tag, margin uint8) bool {
	return tag > old && tag-old >= margin
}

// insert puts v, known absent, in the table with tag, growing it to stay
// at most three quarters full (short probe runs).
func (s *idSet) insert(v uint64, tag uint8) {
	if v == 0 {
		s.zero, s.ztag = true, tag
		return
	}
	if 4*(len(s.ring)+1) > 3*len(s.slots) {
		s.grow()
	}
	i, _ := s.find(v)
	s.slots[i], s.tags[i] = v, tag
}

func (s *idSet) grow() {
	old, oldTags := s.slots, s.tags
	s.slots = make([]uint64, 2*len(old))
	s.tags = make([]uint8, 2*len(old))
	for j, v := range old {
		if v != 0 {
			i, _ := s.find(v)
			s.slots[i], s.tags[i] = v, oldTags[j]
		}
	}
}

// remove takes v out, moving later entries of its probe run back so that
// no run has a hole (linear probing without tombstones).
func (s *idSet) remove(v uint64) {
	if v == 0 {
		s.zero, s.ztag = false, 0
		return
	}
	i, ok := s.find(v)
	if !ok {
		return
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		k := s.home(s.slots[j])
		if i < j && (k <= i || k > j) || i > j && k <= i && k > j {
			s.slots[i], s.tags[i] = s.slots[j], s.tags[j]
			i = j
		}
	}
	s.slots[i], s.tags[i] = 0, 0
}
