package protocol

import (
	"bytes"
	"fmt"
	"time"
)

// FragmentHeaderSize is the size of a fragment frame without its data.
const FragmentHeaderSize = 7

// MaxFragments is the largest number of fragments one object can be split
// into: the count field is one byte.
const MaxFragments = 255

// Fragment is one piece of an object too large for a link's MTU, for example
// a lite session establishment on a LoRa link, whose frames carry at most
// 255 bytes.
//
// Fragmentation is hop by hop: a sender splits an object for one link and the
// neighbour on that link reassembles it, so a fragment never travels further
// than one hop and needs no addresses of its own.
//
// The wire format is:
//
//		0      1        5       6       7
//		+------+--------+-------+-------+-----------...
//		| 0x17 | group  | index | count | data
//		+------+--------+-------+-------+-----------...
//		 kind   u32 BE    u8      u8      1..(mtu-7) bytes
//
//	  - group names the object. The sender draws it from its (injected) random
//	    source, so two objects in flight from one neighbour rarely share it.
//	  - count is the number of fragments of the object, 1..255; index is this
//	    fragment's position, 0..count-1.
//	  - data is at least one byte and runs to the end of the frame. The object
//	    is the concatenation of the fragments' data in index order.
//	  - Fragments are filled equally: all fragments but the last carry the same
//	    number of data bytes, and the last carries that many or fewer.
//	    [Split] produces exactly this; a [Reassembler] rejects a group that
//	    breaks the rule, which lets it bound an object's size from its first
//	    fragment.
type Fragment struct {
	Group uint32
	Index uint8
	Count uint8
	Data  []byte
}

// ParseFragment decodes one fragment frame. It is strict: the kind byte must
// be [KindFragment], count must be at least 1, index must be below count, and
// data must not be empty.
//
// The returned Data aliases b.
func ParseFragment(b []byte) (Fragment, error) {
	r := newReader("fragment", b)
	kind := Kind(r.u8("kind"))
	if r.err == nil && kind != KindFragment {
		return Fragment{}, fmt.Errorf("fragment: kind %v: %w", kind, ErrUnknownKind)
	}
	f := Fragment{
		Group: r.u32("group"),
		Index: r.u8("index"),
		Count: r.u8("count"),
	}
	if r.err != nil {
		return Fragment{}, r.err
	}
	switch {
	case f.Count == 0:
		return Fragment{}, fmt.Errorf("fragment: count 0: %w", ErrMalformed)
	case f.Index >= f.Count:
		return Fragment{}, fmt.Errorf("fragment: index %d of count %d: %w", f.Index, f.Count, ErrMalformed)
	case r.remaining() == 0:
		return Fragment{}, fmt.Errorf("fragment: no data: %w", ErrTruncated)
	}
	f.Data = r.rest()
	return f, nil
}

// AppendTo appends the encoded fragment to b. It does not validate f; a
// fragment from [ParseFragment] or [Split] is always valid.
func (f Fragment) AppendTo(b []byte) []byte {
	b = append(b, byte(KindFragment))
	b = appendU32(b, f.Group)
	b = append(b, f.Index, f.Count)
	return append(b, f.Data...)
}

// Split cuts obj into fragment frames of at most mtu bytes each, for the
// object group group. All frames but the last carry mtu-FragmentHeaderSize
// data bytes.
//
// The caller draws group from its injected random source: a reused group ID
// within a [Reassembler]'s timeout makes the receiver drop both objects.
//
// The frames share one backing array, each with its capacity capped at its
// length, so appending to one frame cannot overwrite another.
//
// Split fails with [ErrMalformed] if obj is empty or mtu is not larger than
// [FragmentHeaderSize], and with [ErrTooLarge] if obj needs more than
// [MaxFragments] frames.
func Split(obj []byte, mtu int, group uint32) ([][]byte, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("split: empty object: %w", ErrMalformed)
	}
	if mtu <= FragmentHeaderSize {
		return nil, fmt.Errorf("split: mtu %d leaves no room for data: %w", mtu, ErrMalformed)
	}
	per := mtu - FragmentHeaderSize
	// Written to avoid overflowing when mtu is near the largest int.
	n := len(obj) / per
	if len(obj)%per != 0 {
		n++
	}
	if n > MaxFragments {
		return nil, fmt.Errorf("split: %d bytes at mtu %d need %d fragments, max %d: %w",
			len(obj), mtu, n, MaxFragments, ErrTooLarge)
	}
	buf := make([]byte, 0, n*FragmentHeaderSize+len(obj))
	frames := make([][]byte, n)
	for i := range n {
		data := obj[i*per : min((i+1)*per, len(obj))]
		start := len(buf)
		buf = Fragment{Group: group, Index: uint8(i), Count: uint8(n), Data: data}.AppendTo(buf)
		frames[i] = buf[start:len(buf):len(buf)]
	}
	return frames, nil
}

// ReassemblerConfig bounds a [Reassembler]. The zero value works: a zero (or
// negative) field takes its default.
type ReassemblerConfig struct {
	// MaxGroups is the most objects reassembled at once, over all sources.
	// Default 64.
	MaxGroups int
	// MaxBytes is the most fragment data buffered at once, over all groups.
	// Default 256 KiB. Bookkeeping adds at most about 24 bytes per expected
	// fragment (6 KiB for a 255-fragment group) on top, bounded by MaxGroups.
	MaxBytes int
	// MaxObjectSize is the largest object accepted. Default 70,000 bytes,
	// enough for 255 LoRa frames (63,240 bytes). It is lowered to MaxBytes if
	// larger, so that one object always fits the budget.
	MaxObjectSize int
	// Timeout is how long a group may take to complete, measured from its
	// first fragment. Default 2 minutes.
	Timeout time.Duration
}

// Reassembler defaults; see [ReassemblerConfig].
const (
	DefaultReassemblyMaxGroups     = 64
	DefaultReassemblyMaxBytes      = 256 << 10
	DefaultReassemblyMaxObjectSize = 70_000
	DefaultReassemblyTimeout       = 2 * time.Minute
)

func (c ReassemblerConfig) withDefaults() ReassemblerConfig {
	if c.MaxGroups <= 0 {
		c.MaxGroups = DefaultReassemblyMaxGroups
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultReassemblyMaxBytes
	}
	if c.MaxObjectSize <= 0 {
		c.MaxObjectSize = DefaultReassemblyMaxObjectSize
	}
	c.MaxObjectSize = min(c.MaxObjectSize, c.MaxBytes)
	if c.Timeout <= 0 {
		c.Timeout = DefaultReassemblyTimeout
	}
	return c
}

// ReassemblerStats are a [Reassembler]'s counters and current occupancy.
type ReassemblerStats struct {
	Completed  uint64 // objects returned by Add
	Duplicates uint64 // identical fragments ignored
	Malformed  uint64 // undecodable fragments and inconsistent groups (ErrMalformed and friends)
	TooLarge   uint64 // groups and fragments refused for MaxObjectSize (ErrTooLarge)
	Refused    uint64 // fragments refused for the memory budget (ErrLimit)
	Evicted    uint64 // groups dropped to make room for newer data
	Expired    uint64 // groups dropped for Timeout

	Groups int // groups in progress
	Bytes  int // fragment data bytes buffered
}

// Reassembler collects fragments into objects, keeping a bounded amount of
// memory whatever its neighbours send. Groups are keyed by (source, group),
// where source names the neighbour or link a fragment came from, so two
// neighbours cannot mix their fragments.
//
// When a new group or more data needs room, the oldest groups (by the time of
// their first fragment, ties broken by arrival order) are evicted. Groups
// whose first fragment is Timeout old are dropped by [Reassembler.Expire] and
// on every [Reassembler.Add].
//
// A Reassembler is a plain state machine: it reads no clock and is not safe
// for concurrent use. Its behaviour depends only on its inputs, never on map
// iteration order.
type Reassembler struct {
	cfg    ReassemblerConfig
	groups map[fragKey]*fragGroup
	heap   []*fragGroup // min-heap by (first, seq): oldest first
	seq    uint64       // arrival number of the next new group
	stats  ReassemblerStats
}

type fragKey struct {
	source string
	group  uint32
}

type fragGroup struct {
	key   fragKey
	first time.Time // arrival of the first fragment
	seq   uint64    // tie-breaker for equal first
	pos   int       // index in Reassembler.heap

	count    uint8
	have     int      // fragments received
	bytes    int      // data bytes received
	per      int      // data length of the non-last fragments, 0 until one arrived
	lastLen  int      // data length of the last fragment, 0 until it arrived
	parts    [][]byte // data by index, nil while missing
	deadline time.Time
}

// NewReassembler returns an empty reassembler bounded by cfg, with defaults
// for its zero fields.
func NewReassembler(cfg ReassemblerConfig) *Reassembler {
	return &Reassembler{
		cfg:    cfg.withDefaults(),
		groups: make(map[fragKey]*fragGroup),
	}
}

// Config returns the configuration in effect, defaults applied.
func (r *Reassembler) Config() ReassemblerConfig { return r.cfg }

// Add takes one fragment frame that arrived from source at now. When it
// completes its object, Add returns the object in a fresh slice and forgets
// the group; otherwise it returns nil.
//
// An identical copy of a fragment already held is ignored. A one-fragment
// object is returned at once and never held, so each copy of it is returned;
// deduplicating objects is the caller's business (envelopes carry IDs).
//
// Add fails with
//   - the decoding error of [ParseFragment] for a bad frame;
//   - [ErrMalformed] for a fragment whose count disagrees with its group, a
//     different fragment under an index already held, or one breaking the
//     equal-fill rule; the group is dropped;
//   - [ErrTooLarge] when the object cannot fit in MaxObjectSize; the group,
//     if any, is dropped;
//   - [ErrLimit] for a fragment larger than MaxBytes by itself; no group is
//     touched.
//
// Add never retains frame.
func (r *Reassembler) Add(now time.Time, source string, frame []byte) (obj []byte, err error) {
	r.Expire(now)
	f, err := ParseFragment(frame)
	if err != nil {
		r.stats.Malformed++
		return nil, fmt.Errorf("reassemble: %w", err)
	}
	// Refused before it touches any group: such a fragment is no evidence
	// against the group it names.
	if len(f.Data) > r.cfg.MaxBytes {
		r.stats.Refused++
		return nil, fmt.Errorf("reassemble: group %08x: %d-byte fragment over the %d-byte budget: %w",
			f.Group, len(f.Data), r.cfg.MaxBytes, ErrLimit)
	}

	key := fragKey{source: source, group: f.Group}
	g := r.groups[key]
	if g == nil {
		return r.addFirst(now, key, f)
	}

	if f.Count != g.count {
		r.drop(g)
		r.stats.Malformed++
		return nil, fmt.Errorf("reassemble: group %08x: count %d, earlier fragments said %d: %w",
			f.Group, f.Count, g.count, ErrMalformed)
	}
	if held := g.parts[f.Index]; held != nil {
		if bytes.Equal(held, f.Data) {
			r.stats.Duplicates++
			return nil, nil
		}
		r.drop(g)
		r.stats.Malformed++
		return nil, fmt.Errorf("reassemble: group %08x: fragment %d arrived twice with different data: %w",
			f.Group, f.Index, ErrMalformed)
	}
	per, lastLen, err := fillShape(g.per, g.lastLen, f)
	if err != nil {
		r.drop(g)
		r.stats.Malformed++
		return nil, err
	}
	if err := r.checkSize(f, per, lastLen, g.bytes+len(f.Data)); err != nil {
		r.drop(g)
		r.stats.TooLarge++
		return nil, err
	}

	if r.stats.Bytes+len(f.Data) > r.cfg.MaxBytes {
		// Make room among the other groups, taking g out of the heap so it
		// is not its own victim. Its data never exceeds MaxObjectSize <=
		// MaxBytes, so evicting the others always makes enough room.
		r.heapRemove(g)
		for r.stats.Bytes+len(f.Data) > r.cfg.MaxBytes && len(r.heap) > 0 {
			r.evictOldest()
		}
		r.heapPush(g)
	}

	g.per, g.lastLen = per, lastLen
	g.parts[f.Index] = bytes.Clone(f.Data)
	g.have++
	g.bytes += len(f.Data)
	r.stats.Bytes += len(f.Data)
	if g.have < int(g.count) {
		return nil, nil
	}

	obj = make([]byte, 0, g.bytes)
	for _, p := range g.parts {
		obj = append(obj, p...)
	}
	r.drop(g)
	r.stats.Completed++
	return obj, nil
}

// addFirst handles the first fragment of a group.
func (r *Reassembler) addFirst(now time.Time, key fragKey, f Fragment) ([]byte, error) {
	per, lastLen := len(f.Data), 0
	if int(f.Index) == int(f.Count)-1 {
		per, lastLen = 0, len(f.Data)
	}
	if err := r.checkSize(f, per, lastLen, len(f.Data)); err != nil {
		r.stats.TooLarge++
		return nil, err
	}
	if f.Count == 1 {
		r.stats.Completed++
		return bytes.Clone(f.Data), nil
	}
	for len(r.heap) > 0 && (len(r.heap) >= r.cfg.MaxGroups || r.stats.Bytes+len(f.Data) > r.cfg.MaxBytes) {
		r.evictOldest()
	}

	g := &fragGroup{
		key:      key,
		first:    now,
		seq:      r.seq,
		deadline: now.Add(r.cfg.Timeout),
		count:    f.Count,
		have:     1,
		bytes:    len(f.Data),
		per:      per,
		lastLen:  lastLen,
		parts:    make([][]byte, f.Count),
	}
	r.seq++
	g.parts[f.Index] = bytes.Clone(f.Data)
	r.groups[key] = g
	r.heapPush(g)
	r.stats.Bytes += len(f.Data)
	r.stats.Groups = len(r.groups)
	return nil, nil
}

// fillShape checks f against the equal-fill rule given what a group has
// seen (per and lastLen are 0 when unknown) and returns the updated shape.
func fillShape(per, lastLen int, f Fragment) (int, int, error) {
	n := len(f.Data)
	if int(f.Index) == int(f.Count)-1 {
		if per != 0 && n > per {
			return 0, 0, fmt.Errorf("reassemble: group %08x: last fragment has %d bytes, others %d: %w",
				f.Group, n, per, ErrMalformed)
		}
		return per, n, nil
	}
	switch {
	case per != 0 && n != per:
		return 0, 0, fmt.Errorf("reassemble: group %08x: fragment %d has %d bytes, others %d: %w",
			f.Group, f.Index, n, per, ErrMalformed)
	case lastLen > n:
		return 0, 0, fmt.Errorf("reassemble: group %08x: fragment %d has %d bytes, fewer than the last's %d: %w",
			f.Group, f.Index, n, lastLen, ErrMalformed)
	}
	return n, lastLen, nil
}

// checkSize fails if the object cannot fit MaxObjectSize: either the data
// received so far is over it, or the smallest object consistent with the
// group's shape is.
func (r *Reassembler) checkSize(f Fragment, per, lastLen, received int) error {
	count := int64(f.Count)
	var least int64
	switch {
	case per != 0 && lastLen != 0:
		least = (count-1)*int64(per) + int64(lastLen)
	case per != 0:
		least = (count-1)*int64(per) + 1
	default: // only the last fragment seen; the others are at least as long
		least = count * int64(lastLen)
	}
	if least > int64(r.cfg.MaxObjectSize) || received > r.cfg.MaxObjectSize {
		return fmt.Errorf("reassemble: group %08x: object of at least %d bytes over the %d-byte limit: %w",
			f.Group, max(least, int64(received)), r.cfg.MaxObjectSize, ErrTooLarge)
	}
	return nil
}

// Expire drops the groups whose first fragment arrived Timeout or longer
// before now, and returns how many it dropped.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for len(r.heap) > 0 && !now.Before(r.heap[0].deadline) {
		r.drop(r.heap[0])
		n++
	}
	r.stats.Expired += uint64(n)
	return n
}

// NextExpiry returns the earliest instant at which [Reassembler.Expire] will
// drop a group, and false if no group is in progress.
func (r *Reassembler) NextExpiry() (time.Time, bool) {
	if len(r.heap) == 0 {
		return time.Time{}, false
	}
	return r.heap[0].deadline, true
}

// Stats returns the counters and current occupancy.
func (r *Reassembler) Stats() ReassemblerStats { return r.stats }

func (r *Reassembler) evictOldest() {
	r.drop(r.heap[0])
	r.stats.Evicted++
}

// drop forgets g and releases its data.
func (r *Reassembler) drop(g *fragGroup) {
	r.heapRemove(g)
	delete(r.groups, g.key)
	r.stats.Bytes -= g.bytes
	r.stats.Groups = len(r.groups)
	g.parts = nil
}

// The heap is written out rather than built on container/heap to avoid the
// interface boxing on every push and pop.

func fragOlder(a, b *fragGroup) bool {
	if !a.first.Equal(b.first) {
		return a.first.Before(b.first)
	}
	return a.seq < b.seq
}

func (r *Reassembler) heapPush(g *fragGroup) {
	g.pos = len(r.heap)
	r.heap = append(r.heap, g)
	r.heapUp(g.pos)
}

func (r *Reassembler) heapRemove(g *fragGroup) {
	i := g.pos
	last := len(r.heap) - 1
	if i != last {
		r.heapSwap(i, last)
	}
	r.heap[last] = nil
	r.heap = r.heap[:last]
	if i != last {
		if !r.heapDown(i) {
			r.heapUp(i)
		}
	}
	g.pos = -1
}

func (r *Reassembler) heapSwap(i, j int) {
	h := r.heap
	h[i], h[j] = h[j], h[i]
	h[i].pos = i
	h[j].pos = j
}

func (r *Reassembler) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !fragOlder(r.heap[i], r.heap[p]) {
			return
		}
		r.heapSwap(i, p)
		i = p
	}
}

// heapDown reports whether the element at i moved.
func (r *Reassembler) heapDown(i int) bool {
	start, n := i, len(r.heap)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && fragOlder(r.heap[c+1], r.heap[c]) {
			c++
		}
		if !fragOlder(r.heap[c], r.heap[i]) {
			break
		}
		r.heapSwap(i, c)
		i = c
	}
	return i != start
}
