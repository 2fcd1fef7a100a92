package store

import (
	"bytes"
	"hash/maphash"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
)

// heldPrefix is the key space heldFilter covers: the engine's custody
// records (routing's c/<envelope key hex>), the records a sender sets when
// it takes a message and deletes when the next hop acknowledges it, often
// within one apply group.
const heldPrefix = enginePrefix + "c/"

// heldMinKeys is the least number of adds a new filter has room for
// (tests shrink it to exercise rebuilds).
var heldMinKeys = 1 << 14

// heldFilter answers, for keys under heldPrefix, "badger certainly does
// not hold this key" without asking badger. It is a Bloom filter over
// every such key badger may hold: built from badger's keys when the log
// opens (after the replay, before the applier starts) and fed every set
// the applier writes under the prefix, before its commit. Deletes are not
// taken out, so it only grows: when its room is spent, the applier builds
// it again from badger. A false "may hold" costs the badger lookup the
// applier made before; "certainly not" is never wrong, because only the
// applier writes the log's keys (guardTxn refuses them to other writers).
//
// Used by the applier goroutine only (applyOps); not safe for concurrent
// use.
type heldFilter struct {
	seed maphash.Seed
	bits []uint64
	mask uint64 // bit count - 1 (a power of two)
	room int    // adds left before a rebuild
}

// newHeldFilter returns a filter of the keys whose hashes are given, with
// room for as many adds again (at least heldMinKeys), at 16 bits a key: a
// false "may hold" under 0.3 % while not full.
func newHeldFilter(seed maphash.Seed, hashes []uint64) *heldFilter {
	keys := 2*len(hashes) + heldMinKeys
	n := uint64(1) << bits.Len64(uint64(16*keys-1))
	f := &heldFilter{seed: seed, bits: make([]uint64, n/64), mask: n - 1, room: len(hashes) + heldMinKeys}
	for _, h := range hashes {
		f.set(h)
	}
	return f
}

// covers reports whether key is in the filter's key space.
func (f *heldFilter) covers(key []byte) bool { return bytes.HasPrefix(key, []byte(heldPrefix)) }

// add records that badger may hold key (a covered key).
func (f *heldFilter) add(key []byte) {
	f.set(maphash.Bytes(f.seed, key))
	f.room--
}

// full reports whether the filter has taken as many adds as it was built
// for.
func (f *heldFilter) full() bool { return f.room < 0 }

// mayHold reports whether badger may hold key (a covered key); false
// means it certainly does not.
func (f *heldFilter) mayHold(key []byte) bool {
	h := maphash.Bytes(f.seed, key)
	for i, step := uint64(0), h>>32|1; i < 4; i++ {
		b := (h + i*step) & f.mask
		if f.bits[b>>6]&(1<<(b&63)) == 0 {
			return false
		}
	}
	return true
}

func (f *heldFilter) set(h uint64) {
	for i, step := uint64(0), h>>32|1; i < 4; i++ {
		b := (h + i*step) & f.mask
		f.bits[b>>6] |= 1 << (b & 63)
	}
}

// buildHeld builds a heldFilter from the keys badger holds under
// heldPrefix. The caller makes sure nothing writes them meanwhile.
func (s *Store) buildHeld() (*heldFilter, error) {
	seed := maphash.MakeSeed()
	var hashes []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(heldPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			hashes = append(hashes, maphash.Bytes(seed, it.Item().Key()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newHeldFilter(seed, hashes), nil
}
