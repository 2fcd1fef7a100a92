package daemon

import "container/list"

// lruTable is a map bounded to max entries that, when full, forgets the
// entry used least recently, in O(1). The guard keeps its peers and its
// address blocks in two of them: a flood of minted peer IDs or of IPv6
// /64s must not make a new entry expensive (a scan of the full table
// cost 40-60 us under the guard's lock for every new one), and a
// flooder's own entry, used all the time, stays.
type lruTable[K comparable, V any] struct {
	max   int
	m     map[K]*list.Element // Value: *lruEntry[K, V]
	order list.List           // front: used last
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lruTable[K, V] {
	return &lruTable[K, V]{max: max, m: map[K]*list.Element{}}
}

// get returns key's value without marking it used.
func (t *lruTable[K, V]) get(key K) (V, bool) {
	if e, ok := t.m[key]; ok {
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// touch returns key's value, made by mk on first use (forgetting the
// idlest entry if the table is full), and marks it used last.
func (t *lruTable[K, V]) touch(key K, mk func() V) V {
	if e, ok := t.m[key]; ok {
		t.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val
	}
	if len(t.m) >= t.max {
		if e := t.order.Back(); e != nil {
			delete(t.m, t.order.Remove(e).(*lruEntry[K, V]).key)
		}
	}
	v := mk()
	t.m[key] = t.order.PushFront(&lruEntry[K, V]{key: key, val: v})
	return v
}

// remove forgets key.
func (t *lruTable[K, V]) remove(key K) {
	if e, ok := t.m[key]; ok {
		t.order.Remove(e)
		delete(t.m, key)
	}
}

// len is the number of entries.
func (t *lruTable[K, V]) len() int { return len(t.m) }
