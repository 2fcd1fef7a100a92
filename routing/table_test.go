package routing

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

var tableNow = time.Unix(1_800_000_000, 0)

func tableAddr(b byte) Address {
	var a Address
	a[0] = b
	return a
}

// route gives d a selected route with metric m (adv m-16) through via 1.
func tableRoute(d *destEntry, seq uint32, m uint16) updateResult {
	return d.update(candidate{link: 1, via: tableAddr(0xff), seq: seq, adv: m - 16, metric: m, hops: 1, expires: tableNow.Add(time.Hour)}, tableNow)
}

// checkHeap fails unless the eviction heap holds exactly the table's
// entries, each at its index, in heap order.
func checkHeap(t *testing.T, tb *table) {
	t.Helper()
	if len(tb.evict) != len(tb.dests) || len(tb.dests) > tb.max {
		t.Fatalf("heap %d entries, table %d, max %d", len(tb.evict), len(tb.dests), tb.max)
	}
	for i, d := range tb.evict {
		if d.at != i || tb.dests[d.dest] != d {
			t.Fatalf("heap entry %d (%v) at %d, in table %v", i, d.dest, d.at, tb.dests[d.dest] == d)
		}
		if p := (i - 1) / 2; i > 0 && tb.evict.Less(i, p) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

// TestTableEvictionOrder: a full table evicts entries without a route
// first, then the highest metric, then the highest address, and only for
// a newcomer that is nearer; the order follows metric changes.
func TestTableEvictionOrder(t *testing.T) {
	tb := newTable(4)
	for i, m := range []uint16{100, 50, 200, 0} {
		d := tb.entry(tableAddr(byte(i+1)), 0)
		if m > 0 {
			tableRoute(d, 1, m)
		}
	}
	checkHeap(t, tb)
	// Full: a newcomer evicts the entry without a route (address 4).
	if d := tb.entry(tableAddr(9), 80); d == nil || tb.get(tableAddr(4)) != nil {
		t.Fatal("the entry without a route was not evicted first")
	}
	tableRoute(tb.get(tableAddr(9)), 1, 80)
	checkHeap(t, tb)
	// Then the highest metric (address 3, 200), not for a farther newcomer.
	if d := tb.entry(tableAddr(10), 250); d != nil {
		t.Fatal("a newcomer farther than every entry got in")
	}
	if d := tb.entry(tableAddr(10), 200); d != nil {
		t.Fatal("a newcomer as far as the farthest entry got in")
	}
	if d := tb.entry(tableAddr(10), 150); d == nil || tb.get(tableAddr(3)) != nil {
		t.Fatal("the farthest entry was not evicted")
	}
	tableRoute(tb.get(tableAddr(10)), 1, 150)
	// A metric change moves an entry: address 2 (50) becomes the farthest.
	tableRoute(tb.get(tableAddr(2)), 2, 300)
	checkHeap(t, tb)
	if d := tb.entry(tableAddr(11), 10); d == nil || tb.get(tableAddr(2)) != nil {
		t.Fatal("the entry whose metric grew was not evicted")
	}
	// Equal metrics: the highest address goes first.
	tableRoute(tb.get(tableAddr(11)), 1, 150)
	tableRoute(tb.get(tableAddr(1)), 2, 150)
	if d := tb.entry(tableAddr(12), 10); d == nil || tb.get(tableAddr(11)) != nil {
		t.Fatal("the highest address was not evicted among equals")
	}
	// Losing the route puts an entry first in line.
	tableRoute(tb.get(tableAddr(12)), 1, 20)
	d9 := tb.get(tableAddr(9))
	if r := d9.dropLink(1, Address{}, tableNow); r != updRemoved {
		t.Fatalf("drop: %v", r)
	}
	checkHeap(t, tb)
	if tb.evict[0] != d9 {
		t.Fatal("an entry that lost its route is not first to evict")
	}
	tb.remove(d9)
	checkHeap(t, tb)
	if tb.get(tableAddr(9)) != nil || d9.t != nil {
		t.Fatal("removed entry still there")
	}
}

// TestTableEvictionBound: random inserts, metric changes, expiries and
// removals never let the table grow past its bound, and the heap always
// matches the table.
func TestTableEvictionBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tb := newTable(64)
	for i := range 5000 {
		a := tableAddr(byte(r.IntN(200)))
		a[1] = byte(r.IntN(4))
		switch r.IntN(4) {
		case 0, 1:
			if d := tb.entry(a, uint16(r.IntN(500))); d != nil && r.IntN(2) == 0 {
				tableRoute(d, uint32(i), uint16(16+r.IntN(500)))
			}
		case 2:
			if d := tb.get(a); d != nil {
				d.expire(tableNow.Add(2 * time.Hour))
			}
		case 3:
			if d := tb.get(a); d != nil {
				tb.remove(d)
			}
		}
		checkHeap(t, tb)
	}
	// The root is the worst entry.
	for i := range tb.evict {
		if tb.evict.Less(i, 0) {
			t.Fatalf("entry %d is worse than the root", i)
		}
	}
	heap.Init(&tb.evict) // and Init agrees with the order kept
	checkHeap(t, tb)
}

// BenchmarkTableEvict: a new, nearer destination arriving at a full table
// of 100,000 (the default MaxRoutes) evicts the farthest one.
func BenchmarkTableEvict(b *testing.B) {
	tb := newTable(100_000)
	for i := range tb.max {
		var a Address
		a[0], a[1], a[2] = byte(i>>16), byte(i>>8), byte(i)
		tableRoute(tb.entry(a, 0), 1, uint16(100+i%1000))
	}
	b.ResetTimer()
	for i := range b.N {
		var a Address
		a[3], a[4], a[5], a[6] = 1, byte(i>>16), byte(i>>8), byte(i)
		d := tb.entry(a, 50)
		if d == nil {
			b.Fatal("not admitted")
		}
		tableRoute(d, 1, 50)
	}
}

// TestInfeasibleKeptNeverSelected: infeasible updates are stored with
// their real metric and never selected; one from the selected next hop
// takes the route away instead of leaving the old metric in place; and a
// stored candidate that the feasibility distance overtook is not selected
// when the better route goes (the selection the loop detector caught).
func TestInfeasibleKeptNeverSelected(t *testing.T) {
	tb := newTable(10)
	d := tb.entry(tableAddr(1), 0)
	a, b := tableAddr(0xa), tableAddr(0xb)
	upd := func(via Address, seq uint32, adv uint16) updateResult {
		return d.update(candidate{link: 1, via: via, seq: seq, adv: adv, metric: adv + 16, hops: 2, expires: tableNow.Add(time.Hour)}, tableNow)
	}
	stored := func(via Address) candidate {
		for _, c := range d.cands {
			if c.via == via {
				return c
			}
		}
		t.Fatalf("no candidate through %v", via)
		return candidate{}
	}
	if r := upd(a, 1, 10); r != updAdded || !d.fdValid || d.fdSeq != 1 || d.fdMetric != 26 {
		t.Fatalf("first route: %v, fd %v %d %d", r, d.fdValid, d.fdSeq, d.fdMetric)
	}
	if r := upd(b, 1, 30); r != updNone || stored(b).adv != 30 {
		t.Fatalf("infeasible update from b: %v, stored %+v", r, stored(b))
	}
	if c, _ := d.route(); c.via != a {
		t.Fatalf("selected %v", c.via)
	}
	// a's route got worse: infeasible, so no route, and a's real metric is kept.
	if r := upd(a, 1, 40); r != updRemoved || stored(a).adv != 40 {
		t.Fatalf("infeasible update from the next hop: %v, stored %+v", r, stored(a))
	}
	if _, ok := d.route(); ok {
		t.Fatal("an infeasible candidate was selected")
	}
	// A newer sequence number is feasible.
	if r := upd(b, 2, 30); r != updAdded || d.fdSeq != 2 {
		t.Fatalf("newer sequence: %v, fd seq %d", r, d.fdSeq)
	}
	// a's candidate (sequence 1) is older than the feasibility distance:
	// when b's route goes, it must not be selected.
	if r := upd(b, 2, MetricInfinite); r != updRemoved {
		t.Fatalf("retraction: %v", r)
	}
	if c, ok := d.route(); ok {
		t.Fatalf("selected %+v, older than the feasibility distance", c)
	}
	// A full candidate list keeps feasible candidates over infeasible ones.
	for i := range maxCandidates {
		upd(tableAddr(byte(0x10+i)), 1, 5) // sequence 1: infeasible now
	}
	if r := upd(tableAddr(0x20), 3, 50); r != updAdded {
		t.Fatalf("a feasible newcomer to a full list of infeasible ones: %v", r)
	}
}

// TestEvictionRetractsRoute: when a full table evicts a destination it has
// a selected route to, the neighbours that route through this node must
// hear that the route is gone. Before the fix the entry vanished in
// silence: neighbours kept sending to it for up to RouteTTL (a black hole:
// the node, its table full of nearer destinations, cannot even ask for a
// route again), and kept advertising their way through it back to it, which
// a node without the evicted feasibility distance accepts (a loop).
func TestEvictionRetractsRoute(t *testing.T) {
	e := attackEngine(t)
	now := attackEpoch.Add(time.Minute)
	near, far, newer := evictIdent(t, 11), evictIdent(t, 12), evictIdent(t, 13)
	advertMetric(t, e, 2, near, 0, now)
	advertMetric(t, e, 2, far, 200, now)
	if _, ok := e.table.get(far.Address()).route(); !ok {
		t.Fatal("no route to the far destination")
	}
	e.table.max = len(e.table.dests)
	now = now.Add(time.Second)
	if err := e.Step(now, FrameReceived{Link: 3, Frame: advertFrame(t, newer, 0, now)}); err != nil {
		t.Fatal(err)
	}
	got := advertsOf(e.Ready(), far.Address())
	e.Advance()
	if e.table.get(far.Address()) != nil {
		t.Fatal("far destination not evicted")
	}
	for _, l := range []LinkID{1, 3} {
		if m, ok := got[l]; !ok || m[1] != MetricInfinite {
			t.Errorf("link %d: advert of the evicted destination %v, want a retraction", l, m)
		}
	}
}

func evictIdent(t *testing.T, seed byte) *protocol.Identity {
	t.Helper()
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// advertFrame is an advert of a fresh announce of id, forwarded by id
// itself, with the given metric.
func advertFrame(t *testing.T, id *protocol.Identity, metric uint16, now time.Time) []byte {
	t.Helper()
	a, err := protocol.NewAnnounce(id, protocol.AnnounceOptions{Sequence: 1, Timestamp: protocol.TimestampOf(now)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return protocol.AppendAdvert(nil, id.Address(), metric, raw)
}

func advertMetric(t *testing.T, e *Engine, link LinkID, id *protocol.Identity, metric uint16, now time.Time) {
	t.Helper()
	if err := e.Step(now, FrameReceived{Link: link, Frame: advertFrame(t, id, metric, now)}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
}

// TestAdvertForwarderMustBeLinkPeer: on a point-to-point link whose peer
// the transport authenticated, a neighbour that names other forwarders in
// its adverts must not get more than its one candidate per destination.
// Before the fix it took all four slots with made-up forwarders, pushing
// out the honest neighbour's candidate, so that when its link went down
// (or it retracted them) the node had no route left although the honest
// neighbour still offered one.
func TestAdvertForwarderMustBeLinkPeer(t *testing.T) {
	id := evictIdent(t, 1)
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, attackEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	attacker, honest, dest := evictIdent(t, 21), evictIdent(t, 22), evictIdent(t, 23)
	for l, p := range map[LinkID]Address{1: attacker.Address(), 2: honest.Address()} {
		if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: l, Kind: LinkTCP, Peer: p}}); err != nil {
			t.Fatal(err)
		}
	}
	e.Ready()
	e.Advance()
	now := attackEpoch.Add(time.Minute)
	frame := advertFrame(t, dest, 0, now)
	adv, err := protocol.ParseAdvert(frame)
	if err != nil {
		t.Fatal(err)
	}
	via := func(fwd Address, metric uint16) []byte {
		return protocol.AppendAdvert(nil, fwd, metric, adv.AnnounceRaw)
	}
	if err := e.Step(now, FrameReceived{Link: 2, Frame: via(honest.Address(), 0)}); err != nil {
		t.Fatal(err)
	}
	for i := range maxCandidates {
		var fake Address
		fake[0], fake[1] = 0xfa, byte(i)
		_ = e.Step(now, FrameReceived{Link: 1, Frame: via(fake, 0)})
	}
	e.Ready()
	e.Advance()
	if err := e.Step(now.Add(time.Second), LinkDown{Link: 1}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
	if c, ok := e.table.get(dest.Address()).route(); !ok || c.link != 2 {
		t.Fatalf("after the attacker's link went down: route %+v, %v; want the honest neighbour's on link 2", c, ok)
	}
}
