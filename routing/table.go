package routing

import (
	"bytes"
	"container/heap"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// MetricInfinite marks an unreachable destination (a retraction).
const MetricInfinite = 0xFFFF

// maxCandidates bounds the routes kept per destination (one per next hop).
const maxCandidates = 4

// candidate is one way to reach a destination: through a neighbour on a link.
type candidate struct {
	link     LinkID
	via      Address // the next hop
	seq      uint32  // the announce sequence number this route is for
	adv      uint16  // metric the neighbour advertised
	metric   uint16  // adv plus the link's cost
	hops     uint8
	expires  time.Time
	external bool // from an outside lookup (Resolved), not an advertisement
}

// destEntry is everything the engine knows about one destination.
type destEntry struct {
	dest  Address
	cands []candidate
	best  int // index into cands, or -1

	// Feasibility distance (Babel): the best (sequence, metric) this node
	// has selected. Only updates that are newer, or as new and strictly
	// better than fdMetric, can be selected; this keeps routes loop-free.
	fdValid  bool
	fdSeq    uint32
	fdMetric uint16

	seq    uint32             // highest verified announce sequence
	ann    *protocol.Announce // latest verified announce, KEM key stripped
	kemKey []byte             // the destination's KEM key, once known
	ident  protocol.CompactIdentity
	known  bool // ident is set

	lastPathRequest time.Time
	// preqMisses counts this node's path requests for the destination
	// since a route or key last arrived (pathbackoff.go).
	preqMisses uint8
	// preqAlong counts this node's requests for the destination sent along
	// its route since a route or key last arrived or a request flooded.
	preqAlong uint8

	// t is the table the entry is in (nil once removed) and at its index
	// in t's eviction heap, kept in place whenever the selection changes.
	t  *table
	at int
}

func (d *destEntry) route() (candidate, bool) {
	if d.best < 0 {
		return candidate{}, false
	}
	return d.cands[d.best], true
}

// table is the routing table.
type table struct {
	dests map[Address]*destEntry
	max   int
	// routes counts the entries with a selected route (the Routes gauge),
	// kept up to date by the engine as selections come and go, so reading
	// it costs nothing however large the table.
	routes int
	// evict holds every entry, the first to evict at the root: no route
	// first, then the highest metric, then the highest address. Entries
	// move in it whenever their selection changes (reselect), so a full
	// table finds its victim in O(log n).
	evict evictHeap
	// evicted, if set, hears of every entry evicted to make room, before
	// it goes: the engine must retract a route it was advertising.
	evicted func(*destEntry)
}

func newTable(max int) *table {
	return &table{dests: make(map[Address]*destEntry), max: max}
}

func (t *table) get(a Address) *destEntry { return t.dests[a] }

// entry returns the entry for a, creating it if there is room. When the table
// is full it evicts the destination with the worst route (or none), unless
// that is better than what the caller brings (metric).
func (t *table) entry(a Address, metric uint16) *destEntry {
	if d := t.dests[a]; d != nil {
		return d
	}
	if len(t.dests) >= t.max {
		if len(t.evict) == 0 {
			return nil
		}
		worst := t.evict[0]
		if evictMetric(worst) <= int(metric) {
			return nil
		}
		if worst.best >= 0 {
			t.routes--
		}
		if t.evicted != nil {
			t.evicted(worst)
		}
		t.remove(worst)
	}
	d := &destEntry{dest: a, best: -1, t: t}
	t.dests[a] = d
	heap.Push(&t.evict, d)
	return d
}

// remove forgets d.
func (t *table) remove(d *destEntry) {
	if t.dests[d.dest] != d {
		return
	}
	delete(t.dests, d.dest)
	heap.Remove(&t.evict, d.at)
	d.t = nil
}

// evictMetric is the metric the eviction order compares: the selected
// route's, or one above any metric for an entry without a route.
func evictMetric(d *destEntry) int {
	if c, ok := d.route(); ok {
		return int(c.metric)
	}
	return MetricInfinite + 1
}

// evictHeap is a max-heap of entries by (evictMetric, address).
type evictHeap []*destEntry

func (h evictHeap) Len() int { return len(h) }
func (h evictHeap) Less(i, j int) bool {
	mi, mj := evictMetric(h[i]), evictMetric(h[j])
	if mi != mj {
		return mi > mj
	}
	return bytes.Compare(h[i].dest[:], h[j].dest[:]) > 0
}
func (h evictHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}
func (h *evictHeap) Push(x any) {
	d := x.(*destEntry)
	d.at = len(*h)
	*h = append(*h, d)
}
func (h *evictHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}

// feasible reports whether an update (seq, adv) may be selected.
func (d *destEntry) feasible(seq uint32, adv uint16) bool {
	return !d.fdValid || seq > d.fdSeq || (seq == d.fdSeq && adv < d.fdMetric)
}

// updateResult says what an update did to the selected route.
type updateResult uint8

const (
	updNone    updateResult = iota // nothing changed in the selection
	updAdded                       // a route now exists where none did
	updChanged                     // the selected route changed
	updRemoved                     // the last route went away
)

// update applies an advertisement (or retraction, adv == MetricInfinite)
// from neighbour via on link. The update is stored whether or not it is
// feasible, as Babel stores it (RFC 8966 section 3.5.3): a neighbour's
// candidate always holds what the neighbour said last, never an older and
// better metric. Which candidates may be selected is reselect's business.
func (d *destEntry) update(c candidate, now time.Time) updateResult {
	old, had := d.route()
	i := slices.IndexFunc(d.cands, func(x candidate) bool { return x.link == c.link && x.via == c.via })
	if c.adv == MetricInfinite {
		if i < 0 {
			return updNone
		}
		d.cands = slices.Delete(d.cands, i, i+1)
		return d.reselect(now, old, had)
	}
	if i >= 0 {
		d.cands[i] = c
	} else if len(d.cands) < maxCandidates {
		d.cands = append(d.cands, c)
	} else {
		// Replace the least useful candidate if the new one is better.
		w := 0
		for j := range d.cands {
			if d.lessUseful(d.cands[j], d.cands[w]) {
				w = j
			}
		}
		if !d.lessUseful(d.cands[w], c) {
			return updNone
		}
		d.cands[w] = c
	}
	return d.reselect(now, old, had)
}

// lessUseful orders stored candidates for replacement: an infeasible
// candidate is worth less than any feasible one, then worse decides.
func (d *destEntry) lessUseful(a, b candidate) bool {
	fa, fb := d.feasible(a.seq, a.adv), d.feasible(b.seq, b.adv)
	if fa != fb {
		return fb
	}
	return worse(a, b)
}

// worse orders candidates: newer sequence numbers first, then lower metric,
// then a stable tie-break so every node decides the same way.
func worse(a, b candidate) bool {
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	if a.metric != b.metric {
		return a.metric > b.metric
	}
	if a.link != b.link {
		return a.link > b.link
	}
	return bytes.Compare(a.via[:], b.via[:]) > 0
}

// reselect picks the best live candidate that is feasible now and updates
// the feasibility distance; old and had describe the selection before the
// change. Feasibility is checked here, at every selection, against the
// feasibility distance of this moment, not when the candidate arrived: the
// distance only improves, so a candidate stored as feasible may no longer be
// (RFC 8966 section 3.5.4: an infeasible route is never selected). This is
// what keeps the graph of selected next hops free of cycles at all times.
func (d *destEntry) reselect(now time.Time, old candidate, had bool) updateResult {
	if d.t != nil {
		defer heap.Fix(&d.t.evict, d.at)
	}
	d.best = -1
	for i, c := range d.cands {
		if !c.expires.After(now) || !d.feasible(c.seq, c.adv) {
			continue
		}
		if d.best < 0 || worse(d.cands[d.best], c) {
			d.best = i
		}
	}
	if d.best < 0 {
		if had {
			return updRemoved
		}
		return updNone
	}
	c := d.cands[d.best]
	// Every selection, external routes included, moves the feasibility
	// distance: what this node advertises is its selected metric, and the
	// loop-freedom argument needs the distance never to be worse than that.
	switch {
	case !d.fdValid || c.seq > d.fdSeq:
		d.fdValid, d.fdSeq, d.fdMetric = true, c.seq, c.metric
	case c.seq == d.fdSeq && c.metric < d.fdMetric:
		d.fdMetric = c.metric
	}
	switch {
	case !had:
		return updAdded
	case old.link != c.link || old.via != c.via || old.metric != c.metric || old.seq != c.seq ||
		old.external != c.external: // an advertised route replaced a provisional one, or the reverse
		return updChanged
	}
	return updNone
}

// expire drops expired candidates and reports whether the selection changed.
func (d *destEntry) expire(now time.Time) updateResult {
	old, had := d.route()
	n := len(d.cands)
	d.cands = slices.DeleteFunc(d.cands, func(c candidate) bool { return !c.expires.After(now) })
	if len(d.cands) == n {
		return updNone
	}
	return d.reselect(now, old, had)
}

// dropLink removes every candidate over link (or through neighbour via on
// it, if via is not zero).
func (d *destEntry) dropLink(link LinkID, via Address, now time.Time) updateResult {
	old, had := d.route()
	n := len(d.cands)
	d.cands = slices.DeleteFunc(d.cands, func(c candidate) bool {
		return c.link == link && (via.IsZero() || c.via == via)
	})
	if len(d.cands) == n {
		return updNone
	}
	return d.reselect(now, old, had)
}

// sortedDests returns the destinations in address order, for deterministic
// iteration.
func (t *table) sortedDests() []*destEntry {
	out := make([]*destEntry, 0, len(t.dests))
	for _, d := range t.dests {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *destEntry) int { return bytes.Compare(a.dest[:], b.dest[:]) })
	return out
}

// Route is a routing table entry as reported by Routes.
type Route struct {
	Dest    Address
	Link    LinkID
	Via     Address
	Metric  uint16
	Hops    uint8
	Seq     uint32
	Expires time.Time
	// Capabilities from the destination's announce.
	Capabilities protocol.Capabilities
	// External marks a route from an outside lookup.
	External bool
	// HasKey reports whether the destination's KEM key is known.
	HasKey bool
}
