package routing

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// Attack tests for path requests and lookups as a resource (pathreq.go).

var attackEpoch = time.Unix(1_800_000_000, 0)

// attackEngine is an engine with three TCP links: the attacker on link 1,
// honest neighbours on links 2 and 3.
func attackEngine(t *testing.T) *Engine {
	t.Helper()
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	// A long retry base makes the duplicate window (RetryBase/2) outlast
	// the flood, so the envelope sent again afterwards must be a duplicate.
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2}), RetryBase: 10 * time.Minute}, attackEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for l := LinkID(1); l <= 3; l++ {
		if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: l, Kind: LinkTCP}}); err != nil {
			t.Fatal(err)
		}
	}
	e.Ready()
	e.Advance()
	return e
}

// pathRequestsOut counts the path requests in rd's transmits per link.
func pathRequestsOut(rd Ready, per map[LinkID]int) int {
	n := 0
	for _, tx := range rd.Transmits {
		if k, err := protocol.PeekKind(tx.Frame); err == nil && k == protocol.KindPathRequest {
			per[tx.Link]++
			n++
		}
	}
	return n
}

func signedEnvelope(t *testing.T, from *protocol.Identity, id int, dest Address, now time.Time) []byte {
	t.Helper()
	ts := protocol.TimestampOf(now)
	env, err := protocol.SignEnvelope(from, protocol.Header{
		Type: protocol.TypeMessage, HopLimit: 16, ID: MessageID{byte(id), byte(id >> 8), 0xee}, Created: ts, Expires: ts + 3600, Dest: dest,
	}, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestPathRequestFlood: a neighbour sends 100,000 valid path requests with
// random IDs and targets in 30 s. What the node passes on is bounded by the
// per-link rate, the requests waiting for an answer and the dedup space
// stay bounded, and an envelope seen before the flood is still recognised
// as a duplicate after it (path requests no longer share the envelope seen
// cache). Before the fix every request was forwarded to both other
// neighbours (200,000 frames), pathReqs held every one of them, and the
// flood evicted the envelope from the seen cache.
func TestPathRequestFlood(t *testing.T) {
	e := attackEngine(t)
	now := attackEpoch
	sender, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{3}))
	if err != nil {
		t.Fatal(err)
	}
	var dest Address
	dest[0] = 0x42
	env := signedEnvelope(t, sender, 1, dest, now)
	if err := e.Step(now, FrameReceived{Link: 2, Frame: env}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()

	const n, span = 100_000, 30 * time.Second
	r := rand.New(rand.NewPCG(7, 8))
	per := map[LinkID]int{}
	out, maxPending := 0, 0
	for i := range n {
		now = attackEpoch.Add(span * time.Duration(i) / n)
		var pr protocol.PathRequest
		for j := range pr.ID {
			pr.ID[j] = byte(r.Uint32())
		}
		for j := range pr.Target {
			pr.Target[j] = byte(r.Uint32())
		}
		pr.HopLimit = 8
		_ = e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)})
		if i%100 == 99 {
			e.Tick(now)
			out += pathRequestsOut(e.Ready(), per)
			e.Advance()
			maxPending = max(maxPending, len(e.pathReqs))
		}
	}
	out += pathRequestsOut(e.Ready(), per)
	e.Advance()

	c := e.Counters()
	// Received: one bucket (burst + rate x span); each accepted request
	// goes to the two other links.
	accepted := float64(e.cfg.PathRequestBurst) + e.cfg.PathRequestRate*span.Seconds()
	t.Logf("%d path requests in, %d out (%.5f per request received; %v per link), pending at most %d, dedup space %d, seen cache %d, limited %d",
		n, out, float64(out)/n, per, maxPending, e.preq.seen.len(), e.seen.len(), c.PathRequestsLimited)
	if limit := int(2*accepted) + 2; out > limit {
		t.Errorf("%d path requests forwarded for %d received from one link in %v; the rate allows %d", out, n, span, limit)
	}
	if per[1] != 0 {
		t.Errorf("%d requests sent back to the attacker's point-to-point link", per[1])
	}
	if maxPending > e.cfg.MaxPathRequests || maxPending > int(accepted)+1 {
		t.Errorf("%d path requests waiting for an answer (bound %d, accepted at most %.0f)", maxPending, e.cfg.MaxPathRequests, accepted)
	}
	if e.preq.seen.len() > pathReqSeenSize {
		t.Errorf("path request dedup space holds %d IDs, bound %d", e.preq.seen.len(), pathReqSeenSize)
	}
	dups := c.Duplicates
	if err := e.Step(now, FrameReceived{Link: 3, Frame: env}); err != nil {
		t.Fatal(err)
	}
	if got := e.Counters().Duplicates - dups; got != 1 {
		t.Errorf("the envelope sent again after the flood was not recognised as a duplicate (%d duplicates counted)", got)
	}
}

// TestLookupFlood: a neighbour sends 1,000 signed envelopes to random
// destinations in 10 s. Each one used to start a path request flood and a
// DHT lookup (1,000 of each); the lookup budget bounds them.
func TestLookupFlood(t *testing.T) {
	e := attackEngine(t)
	sender, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{3}))
	if err != nil {
		t.Fatal(err)
	}
	const n, span = 1000, 10 * time.Second
	r := rand.New(rand.NewPCG(9, 10))
	lookups, requests := 0, 0
	per := map[LinkID]int{}
	for i := range n {
		now := attackEpoch.Add(span * time.Duration(i) / n)
		var dest Address
		for j := range dest {
			dest[j] = byte(r.Uint32())
		}
		_ = e.Step(now, FrameReceived{Link: 1, Frame: signedEnvelope(t, sender, i, dest, now)})
		rd := e.Ready()
		lookups += len(rd.Lookups)
		requests += pathRequestsOut(rd, per)
		e.Advance()
	}
	limit := e.cfg.LookupBurst + int(e.cfg.LookupRate*span.Seconds()) + 1
	t.Logf("%d envelopes to random destinations: %d lookups, %d path requests sent (limit %d lookups)", n, lookups, requests, limit)
	if lookups > limit {
		t.Errorf("%d lookups for %d junk envelopes in %v; the budget allows %d", lookups, n, span, limit)
	}
	if requests > 3*limit {
		t.Errorf("%d own path requests for %d junk envelopes; the budget allows %d per link", requests, n, limit)
	}
}

// TestLookupPerDestination: one destination is looked up at most once per
// PathRequestInterval, however often messages for it ask.
func TestLookupPerDestination(t *testing.T) {
	e := attackEngine(t)
	var dest Address
	dest[0] = 7
	lookups := 0
	for i := range 600 {
		now := attackEpoch.Add(time.Duration(i) * time.Second)
		if err := e.Step(now, SendRequest{Ref: uint64(i), Dest: dest, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		e.Tick(now)
		lookups += len(e.Ready().Lookups)
		e.Advance()
	}
	if want := int(10*time.Minute/e.cfg.PathRequestInterval) + 1; lookups > want || lookups == 0 {
		t.Fatalf("%d lookups for one destination in 10 min, want 1..%d", lookups, want)
	}
}

// advertFrom feeds e, on link, an advert of a fresh announce of id with
// sequence number seq, as id's neighbour would send it.
func advertFrom(t *testing.T, e *Engine, link LinkID, id *protocol.Identity, seq uint32, now time.Time) {
	t.Helper()
	a, err := protocol.NewAnnounce(id, protocol.AnnounceOptions{Sequence: seq, Timestamp: protocol.TimestampOf(now)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(now, FrameReceived{Link: link, Frame: protocol.AppendAdvert(nil, id.Address(), 0, raw)}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
}

// TestPathRequestSeqnoTarget: the target of a path request issues a new
// sequence number only when the request asks for a newer one than it has
// (a lookup that wants any route no longer bumps it), and still at most one
// per 10 s.
func TestPathRequestSeqnoTarget(t *testing.T) {
	e := attackEngine(t)
	now := attackEpoch.Add(time.Minute)
	seq0 := e.ownSeq
	ask := func(id byte, has bool, seqno uint32) {
		pr := protocol.PathRequest{ID: [8]byte{id}, Target: e.self, HopLimit: 8, HasSeqno: has, Seqno: seqno}
		if err := e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)}); err != nil {
			t.Fatal(err)
		}
		e.Ready()
		e.Advance()
	}
	ask(1, false, 0)
	ask(2, true, seq0)
	if e.ownSeq != seq0 {
		t.Fatalf("sequence number %d after requests for any route and for %d; want %d", e.ownSeq, seq0, seq0)
	}
	if c := e.Counters(); c.PathRequestsAnswer != 2 {
		t.Fatalf("%d answers to two requests", c.PathRequestsAnswer)
	}
	ask(3, true, seq0+1)
	if e.ownSeq != seq0+1 {
		t.Fatalf("sequence number %d after a request for %d", e.ownSeq, seq0+1)
	}
	now = now.Add(time.Second)
	ask(4, true, seq0+2)
	if e.ownSeq != seq0+1 {
		t.Fatalf("sequence number %d one second after the last new one; at most one per 10 s", e.ownSeq)
	}
}

// TestPathRequestSeqnoIntermediate: a node whose selected route satisfies
// a request answers it and does not pass it on; one whose route's sequence
// number is too old passes it on along its route, towards the target,
// and answers once a new enough announce arrives.
func TestPathRequestSeqnoIntermediate(t *testing.T) {
	e := attackEngine(t)
	target, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	now := attackEpoch.Add(time.Minute)
	advertFrom(t, e, 2, target, 5, now)
	if c, ok := e.table.get(target.Address()).route(); !ok || c.seq != 5 || c.link != 2 {
		t.Fatalf("no route to the target over link 2: %+v", c)
	}
	step := func(id byte, seqno uint32) (answers, forwards map[LinkID]int) {
		pr := protocol.PathRequest{ID: [8]byte{id}, Target: target.Address(), HopLimit: 8, HasSeqno: true, Seqno: seqno}
		if err := e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)}); err != nil {
			t.Fatal(err)
		}
		answers, forwards = map[LinkID]int{}, map[LinkID]int{}
		rd := e.Ready()
		pathRequestsOut(rd, forwards)
		for _, tx := range rd.Transmits {
			if k, _ := protocol.PeekKind(tx.Frame); k == protocol.KindAdvert {
				if a, err := protocol.ParseAdvert(tx.Frame); err == nil && a.Announce.Address() == target.Address() {
					answers[tx.Link]++
				}
			}
		}
		e.Advance()
		return answers, forwards
	}
	answers, forwards := step(1, 5)
	if answers[1] != 1 || len(forwards) != 0 {
		t.Fatalf("request for sequence 5 with a route for 5: answers %v, forwarded %v; want one answer and nothing forwarded", answers, forwards)
	}
	answers, forwards = step(2, 6)
	if len(answers) != 0 || forwards[2] != 1 || forwards[3] != 0 || forwards[1] != 0 {
		t.Fatalf("request for sequence 6 with a route for 5: answers %v, forwarded %v; want it passed on along the route only", answers, forwards)
	}
	// The target's answer with sequence 6 goes back to the requester.
	now = now.Add(time.Second)
	advertFrom(t, e, 2, target, 6, now)
	if c := e.Counters(); c.PathRequestsAnswer != 2 || len(e.pathReqs) != 0 {
		t.Fatalf("%d answers, %d requests waiting after the new sequence number arrived", c.PathRequestsAnswer, len(e.pathReqs))
	}
}

// advertsOf returns the adverts for dest in rd, by link: (sequence, metric).
func advertsOf(rd Ready, dest Address) map[LinkID][2]uint32 {
	out := map[LinkID][2]uint32{}
	for _, tx := range rd.Transmits {
		if k, _ := protocol.PeekKind(tx.Frame); k != protocol.KindAdvert {
			continue
		}
		if a, err := protocol.ParseAdvert(tx.Frame); err == nil && a.Announce.Address() == dest {
			out[tx.Link] = [2]uint32{a.Announce.Sequence, uint32(a.Metric)}
		}
	}
	return out
}

// TestNewerRetractionNotAdvertisedAsRoute: a retraction carrying a newer
// sequence number than the route this node holds must not make the node
// advertise its (older) route under the newer number: neighbours would
// take a claim of a route this node does not have as feasible whatever
// their feasibility distance, which can close a loop.
func TestNewerRetractionNotAdvertisedAsRoute(t *testing.T) {
	e := attackEngine(t)
	target, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	now := attackEpoch.Add(time.Minute)
	advertFrom(t, e, 2, target, 6, now)
	// A neighbour on link 3 retracts, under sequence 7.
	a7, err := protocol.NewAnnounce(target, protocol.AnnounceOptions{Sequence: 7, Timestamp: protocol.TimestampOf(now)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := a7.MarshalBinary()
	var nb Address
	nb[0] = 0x33
	if err := e.Step(now, FrameReceived{Link: 3, Frame: protocol.AppendAdvert(nil, nb, MetricInfinite, raw)}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
	// Link 4 comes up: the node tells it its whole table.
	now = now.Add(time.Second)
	if err := e.Step(now, LinkUp{Link: LinkInfo{ID: 4, Kind: LinkTCP}}); err != nil {
		t.Fatal(err)
	}
	got := advertsOf(e.Ready(), target.Address())[4]
	e.Advance()
	if got[1] != uint32(MetricInfinite) && got[0] != 6 {
		t.Fatalf("advertised sequence %d metric %d while its route is for sequence 6", got[0], got[1])
	}
	if c, ok := e.table.get(target.Address()).route(); !ok || c.seq != 6 {
		t.Fatalf("route %+v, %v", c, ok)
	}
}

// TestPathRequestForwardBudget: three neighbours flooding at once get no
// more onto a fourth link than its forwarding budget (twice one link's
// intake), however much each of them is allowed in.
func TestPathRequestForwardBudget(t *testing.T) {
	e := attackEngine(t)
	if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: 4, Kind: LinkTCP}}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
	const n, span = 3000, 10 * time.Second
	per := map[LinkID]int{}
	for i := range n {
		now := attackEpoch.Add(span * time.Duration(i) / n)
		pr := protocol.PathRequest{ID: [8]byte{byte(i), byte(i >> 8), 0x77}, Target: tableAddr(byte(i)), HopLimit: 8}
		pr.Target[1] = byte(i >> 8)
		_ = e.Step(now, FrameReceived{Link: LinkID(1 + i%3), Frame: pr.AppendTo(nil)})
		pathRequestsOut(e.Ready(), per)
		e.Advance()
	}
	in := float64(e.cfg.PathRequestBurst) + e.cfg.PathRequestRate*span.Seconds()
	out := 2*float64(e.cfg.PathRequestBurst) + 2*e.cfg.PathRequestRate*span.Seconds()
	t.Logf("forwarded per link %v; intake per link %.0f, forwarding budget per link %.0f", per, in, out)
	if float64(per[4]) > out+1 {
		t.Fatalf("%d requests forwarded onto link 4, budget %.0f", per[4], out)
	}
	if float64(per[4]) < in {
		t.Fatalf("%d requests forwarded onto link 4: less than one link's intake (%.0f)", per[4], in)
	}
}

// TestPathRequestDedupSpace: the dedup space forgets its oldest requests
// when full, never grows past its bound, and remembers the newest.
func TestPathRequestDedupSpace(t *testing.T) {
	var s pathReqState
	id := func(i int) uint64 {
		return pathReqKey(protocol.PathRequest{ID: [protocol.PathRequestIDSize]byte{byte(i), byte(i >> 8), byte(i >> 16)}, HopLimit: 8})
	}
	add := func(k uint64) bool {
		added, _ := s.take(k, 0, nil)
		return added
	}
	for i := range pathReqSeenSize + 100 {
		if !add(id(i)) {
			t.Fatalf("ID %d not new", i)
		}
	}
	if s.seen.len() != pathReqSeenSize || len(s.seen.ring) != pathReqSeenSize {
		t.Fatalf("%d IDs, ring %d; bound %d", s.seen.len(), len(s.seen.ring), pathReqSeenSize)
	}
	if add(id(pathReqSeenSize + 99)) {
		t.Fatal("the newest ID was forgotten")
	}
	if !add(id(0)) {
		t.Fatal("the oldest ID was not forgotten")
	}
}

// TestAttackPathRequestReforwardBound: a copy of a request with more hops
// left than every copy taken before is passed on again, so a neighbour
// sends one request (hop limit 15) 3,200 times, its hop count counting
// down from the limit to 0 and over again, in random order too, slowly
// enough that no rate limit drops any. The node passes it on at most
// 15 times per link (once per hop of its limit: the hops left must grow
// each time), on a radio at most 8 (two more hops left each time),
// answers or remembers no more, and a request it is the
// target of, or has a route for, is answered at most once more than that.
func TestAttackPathRequestReforwardBound(t *testing.T) {
	target, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		name  string
		radio bool
		route bool // the node has a route to the target
		self  bool // the node is the target
	}{
		{"forwarder", false, false, false}, {"has a route", false, true, false}, {"target", false, false, true},
		{"radio forwarder", true, false, false}, {"radio target", true, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := attackEngine(t)
			if c.radio {
				e = radioEngine(t)
			}
			now := attackEpoch.Add(time.Minute)
			if c.route {
				advertFrom(t, e, 2, target, 5, now)
			}
			pr := protocol.PathRequest{ID: [8]byte{0x5c}, Target: target.Address(), HopLimit: protocol.MaxPathRequestHops}
			if c.self {
				pr.Target = e.self
			}
			bound := int(pr.HopLimit)
			if c.radio {
				bound = 1 + (bound-1)/reforwardMargin
			}
			per := map[LinkID]int{}
			answers := e.Counters().PathRequestsAnswer
			const n = 3200
			for i := range n {
				now = now.Add(time.Second) // four per second pass the intake
				pr.HopCount = pr.HopLimit - uint8(i%int(pr.HopLimit+1))
				if i >= n/2 {
					pr.HopCount = uint8(r.IntN(int(pr.HopLimit) + 1))
				}
				if i == n/2 {
					now = now.Add(10 * time.Minute) // the first round forgotten by pathReqs, not by the dedup space
				}
				if err := e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)}); err != nil {
					t.Fatal(err)
				}
				if c.radio {
					_ = e.Step(now, TxDone{Link: 1, Frames: 16})
				}
				e.Tick(now)
				pathRequestsOut(e.Ready(), per)
				e.Advance()
				for _, p := range e.pathReqs {
					if len(p.more) >= bound {
						t.Fatalf("%d ways back remembered for one request", 1+len(p.more))
					}
				}
			}
			cs := e.Counters()
			t.Logf("%d copies in: forwarded %v, taken again %d, answers %d, limited %d", n, per, cs.PathRequestsAgain, cs.PathRequestsAnswer-answers, cs.PathRequestsLimited)
			if cs.PathRequestsLimited != 0 {
				t.Fatalf("%d copies limited: the test should run within the rates", cs.PathRequestsLimited)
			}
			for l, k := range per {
				if k > bound {
					t.Errorf("one request passed on %d times on link %d, bound %d", k, l, bound)
				}
			}
			if cs.PathRequestsAgain > uint64(bound) {
				t.Errorf("one request taken again %d times, bound %d", cs.PathRequestsAgain, bound)
			}
			if got := cs.PathRequestsAnswer - answers; got > uint64(bound)+1 {
				t.Errorf("one request answered %d times, bound %d", got, bound+1)
			}
			switch {
			case c.route || c.self:
				if cs.PathRequestsAnswer == answers {
					t.Error("the request was never answered")
				}
			case c.radio:
				if per[1] == 0 {
					t.Errorf("forwarded %v: never on the radio", per)
				}
			case per[2] != bound || per[3] != bound:
				t.Errorf("forwarded %v: want %d on links 2 and 3", per, bound)
			}
		})
	}
}

// TestAttackPathRequestRadioRace: on a radio a neighbour broadcasts a
// request ahead of its genuine copies, with no hops left or fewer than the
// genuine copy. The genuine copy is passed on all the same if it has at
// least two more hops left (the margin of a shared link): one hop of reach
// is what such a race can take.
func TestAttackPathRequestRadioRace(t *testing.T) {
	e := radioEngine(t)
	now := attackEpoch.Add(time.Minute)
	u, m := protocol.Address{0x0b, 1}, protocol.Address{0x0c, 2}
	var dest Address
	dest[0] = 0x77
	send := func(id byte, count uint8, fwd Address) (flooded int) {
		now = now.Add(time.Second)
		pr := protocol.PathRequest{ID: [8]byte{id}, Target: dest, HopLimit: 8, HopCount: count, Forwarder: fwd}
		if err := e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)}); err != nil {
			t.Fatal(err)
		}
		_ = e.Step(now, TxDone{Link: 1, Frames: 16})
		f, _ := pathRequestsSent(e.Ready())
		e.Advance()
		return f
	}
	for _, c := range []struct {
		raced, genuine uint8 // hop counts
		again          bool
	}{{8, 3, true}, {8, 6, true}, {8, 7, false}, {7, 6, false}, {7, 5, true}, {4, 3, false}, {5, 3, true}} {
		id := 10*c.raced + c.genuine
		if f := send(id, c.raced, m); (f == 1) != (c.raced < 8) {
			t.Fatalf("raced copy (hop count %d) forwarded %d times", c.raced, f)
		}
		if f := send(id, c.genuine, u); (f == 1) != c.again {
			t.Errorf("raced copy with hop count %d, genuine %d: genuine forwarded %d times, want again %v", c.raced, c.genuine, f, c.again)
		}
	}
}
