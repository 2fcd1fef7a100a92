package routing

import (
	"errors"
	"testing"
)

// The link queue's rules (queue.go, quota.go): frames of strictly lower
// priority are displaced newest first; the node's own frames also displace
// forwarded ones of the same priority; a forwarded frame never displaces
// the node's own, and one neighbour's forwarded frames hold at most half
// the queue (one always fits while it has none queued).
func TestLinkQueueRules(t *testing.T) {
	a := owner{n: neighbour{link: 1}, fwd: true}
	b := owner{n: neighbour{link: 2}, fwd: true}
	c3 := owner{n: neighbour{peer: Address{3}}, fwd: true}
	c4 := owner{n: neighbour{peer: Address{4}}, fwd: true}
	frame := func(n int, tag byte) []byte {
		f := make([]byte, n)
		f[0] = tag
		return f
	}
	tags := func(items []qitem) string {
		s := ""
		for _, it := range items {
			s += string(it.frame[0])
		}
		return s
	}
	drain := func(q *linkQueue) string {
		var out []qitem
		for {
			it, ok := q.pop()
			if !ok {
				return tags(out)
			}
			out = append(out, it)
		}
	}
	type push struct {
		n     int
		tag   byte
		pri   Priority
		owner owner
		ok    bool
		drops string
	}
	cases := []struct {
		name   string
		limit  int
		pushes []push
		left   string
	}{
		{"lower priority displaced newest first", 100, []push{
			{40, 'a', PriBulk, owner{}, true, ""},
			{40, 'b', PriBulk, owner{}, true, ""},
			{30, 'c', PriData, owner{}, true, "b"},
			{60, 'd', PriControl, owner{}, true, "a"},
		}, "dc"},
		{"equal priority own frames are not displaced", 100, []push{
			{60, 'a', PriData, owner{}, true, ""},
			{50, 'b', PriData, owner{}, false, ""},
		}, "a"},
		{"refused when displacing cannot make room", 100, []push{
			{30, 'a', PriControl, owner{}, true, ""},
			{40, 'b', PriBulk, owner{}, true, ""},
			{80, 'c', PriData, owner{}, false, ""},
		}, "ab"},
		{"a neighbour holds at most half", 100, []push{
			{40, 'a', PriData, a, true, ""},
			{20, 'b', PriData, a, false, ""},
			{50, 'c', PriData, b, true, ""},
		}, "ac"},
		{"one frame always fits while the neighbour has none queued", 100, []push{
			{70, 'a', PriData, a, true, ""},
			{10, 'b', PriData, a, false, ""},
		}, "a"},
		{"forwarded never displaces own, even of lower priority", 100, []push{
			{80, 'a', PriBulk, owner{}, true, ""},
			{30, 'b', PriControl, a, false, ""},
		}, "a"},
		{"forwarded displaces forwarded of lower priority only", 100, []push{
			{45, 'a', PriBulk, b, true, ""},
			{45, 'b', PriData, c3, true, ""},
			{40, 'c', PriControl, a, true, "a"},
			{20, 'd', PriData, c4, false, ""},
		}, "cb"},
		{"own displaces forwarded of the same priority, newest first", 100, []push{
			{40, 'a', PriData, a, true, ""},
			{40, 'b', PriData, b, true, ""},
			{50, 'c', PriData, owner{}, true, "b"},
		}, "ac"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &linkQueue{limit: c.limit}
			for _, p := range c.pushes {
				dropped, ok := q.push(qitem{frame: frame(p.n, p.tag), pri: p.pri, owner: p.owner})
				if ok != p.ok || tags(dropped) != p.drops {
					t.Fatalf("push %c: ok %v, dropped %q; want %v, %q", p.tag, ok, tags(dropped), p.ok, p.drops)
				}
				if q.bytes > q.limit {
					t.Fatalf("push %c: %d bytes queued, limit %d", p.tag, q.bytes, q.limit)
				}
			}
			if got := drain(q); got != c.left {
				t.Errorf("queue holds %q, want %q", got, c.left)
			}
			if q.bytes != 0 || len(q.fwdBytes) != 0 {
				t.Errorf("empty queue counts %d bytes, %v forwarded", q.bytes, q.fwdBytes)
			}
		})
	}
}

// TestCustodyQuotaAccounting: every charge is given back exactly, even when
// a record's data changes while it is kept, and each quota refuses what
// would pass it.
func TestCustodyQuotaAccounting(t *testing.T) {
	self := Address{1}
	lim := quotaLimits{total: 100_000, reserve: 20_000, perNeighbour: 30_000, perSource: 25_000, perDest: 40_000,
		sealed: 15_000, sealedPerNeigh: 10_000}
	s := newCustodyStore(newCustodyQuota(self, lim))
	rec := func(id byte, size int, dest, src Address, from owner, sealed, origin bool) *custodyRec {
		r := &custodyRec{id: MessageID{id}, key: envKey{id}, dest: dest, source: src, sealedSender: sealed, origin: origin,
			data: make([]byte, size-custodyRecOverhead)}
		r.from, r.hasFrom = from.n, from.fwd
		return r
	}
	n1 := owner{n: neighbour{link: 1}, fwd: true}
	n2 := owner{n: neighbour{peer: Address{9}}, fwd: true}
	steps := []struct {
		r     *custodyRec
		quota string // "" accepted, else the quota that refuses
	}{
		{rec(1, 20_000, Address{2}, Address{3}, n1, false, false), ""},
		{rec(2, 10_001, Address{4}, Address{5}, n1, false, false), "neighbour"},
		{rec(3, 6_000, Address{6}, Address{3}, n2, false, false), "source"},
		{rec(4, 9_000, Address{6}, Address{7}, n2, true, false), ""},
		{rec(5, 2_000, Address{8}, Address{}, n2, true, false), "sealed-sender neighbour"},
		{rec(6, 7_000, Address{8}, Address{}, n1, true, false), "sealed-sender"},
		{rec(7, 20_000, Address{10}, Address{11}, n2, false, false), ""},
		{rec(8, 20_000, Address{12}, Address{13}, owner{}, false, false), ""},
		{rec(9, 15_000, Address{14}, Address{15}, owner{}, false, false), "forwarded"},
		{rec(10, 29_000, Address{14}, self, owner{}, false, false), ""}, // own control message
		{rec(11, 2_000, Address{14}, Address{}, owner{}, false, true), ""},
		{rec(12, 3_000, Address{14}, Address{}, owner{}, false, true), "total"},
	}
	for i, st := range steps {
		err := s.admit(st.r)
		switch {
		case st.quota == "" && err != nil:
			t.Fatalf("step %d refused: %v", i, err)
		case st.quota != "" && (err == nil || !errors.Is(err, ErrCustodyFull)):
			t.Fatalf("step %d: got %v, want the %s quota to refuse", i, err, st.quota)
		case st.quota != "" && err.Error()[:len(st.quota)+6] != st.quota+" quota":
			t.Fatalf("step %d: refused by %v, want the %s quota", i, err, st.quota)
		case err == nil:
			s.add(st.r)
		}
	}
	for _, st := range steps {
		s.remove(st.r.key)
	}
	q := s.quota
	if s.bytes != 0 || q.own != 0 || q.fwd != 0 || q.sealed != 0 || len(q.byNeighbour)+len(q.sealedByNeigh)+len(q.bySource)+len(q.byDest) != 0 {
		t.Errorf("after removing every record: bytes %d, own %d, forwarded %d, sealed %d, maps %v %v %v %v",
			s.bytes, q.own, q.fwd, q.sealed, q.byNeighbour, q.sealedByNeigh, q.bySource, q.byDest)
	}
}
