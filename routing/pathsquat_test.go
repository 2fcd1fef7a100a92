package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Path request ID squatting: the request ID is the key of the flood's
// duplicate suppression, and the hop count and the forwarder change on
// the way. A neighbour that hears a request first can race its ID to other
// nodes under another request, or with no hops left, and have them drop
// the genuine copies as duplicates (pathreq.go).

// squatNet is an IP line r - a - b - c - t in which only neighbours know
// each other (IPAdvertRadius 1), so r finds t only through a path request
// that c answers, plus a silent attacker m with fast links to r and b: m
// hears r's request 1 ms after r sends it and races its copy to b, where
// the genuine copy arrives 20 ms after r sent it. craft makes m's copy
// from the genuine request; at sets when m's copy reaches b, after the
// moment m heard the genuine one.
func squatNet(t *testing.T, craft func(pr protocol.PathRequest) protocol.PathRequest, at time.Duration) *testNet {
	t.Helper()
	n := newTestNet(t, 15)
	n.cfg = func(c *routing.Config) { c.IPAdvertRadius = 1 }
	for _, nm := range []string{"r", "a", "b", "c", "t", "m"} {
		n.addNode(nm)
	}
	for _, p := range [][2]string{{"r", "a"}, {"a", "b"}, {"b", "c"}, {"c", "t"}} {
		n.addLink(routing.LinkIP, 10*time.Millisecond, 0, p[0], p[1])
	}
	rm := n.addLink(routing.LinkIP, time.Millisecond, 0, "r", "m")
	mb := n.addLink(routing.LinkIP, time.Millisecond, 0, "m", "b")
	m, b := n.node("m"), n.node("b")
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from == m {
			return true // m passes nothing on
		}
		if craft == nil || l != rm || from != n.node("r") {
			return false
		}
		if k, err := protocol.PeekKind(tx.Frame); err != nil || k != protocol.KindPathRequest {
			return false
		}
		pr, err := protocol.ParsePathRequest(tx.Frame)
		if err != nil {
			n.t.Fatal(err)
		}
		frame := craft(pr).AppendTo(nil)
		n.push(&event{at: n.now.Add(rm.latency + at), node: b, in: routing.FrameReceived{Link: mb.id, Frame: frame}})
		return false
	}
	n.run(5 * time.Second)
	if routes := n.routesOf(n.node("r")); len(n.node("r").eng.Routes()) != 2 {
		t.Fatalf("r should know a and m only before the request:\n%s", routes)
	}
	return n
}

// findsTarget sends r's message to t and checks that r got a route to t
// from the answer to its first path request, and that t got the message,
// within 30 s (the next request for t is a minute away).
func findsTarget(t *testing.T, n *testNet) {
	t.Helper()
	n.send("r", "t", "hello")
	n.run(30 * time.Second)
	r, tt := n.node("r"), n.node("t")
	if sent := r.eng.Counters().PathRequestsSent; sent != 1 {
		t.Fatalf("r sent %d path requests, want 1", sent)
	}
	routed := false
	for _, rt := range r.eng.Routes() {
		routed = routed || rt.Dest == tt.id.Address()
	}
	c := n.node("c").eng.Counters()
	if !routed || len(tt.inbox) != 1 {
		t.Fatalf("r has a route to t: %v; t got %d messages; c took %d requests and answered %d; b forwarded %d\nroutes of r:\n%s",
			routed, len(tt.inbox), c.PathRequestsIn, c.PathRequestsAnswer, n.node("b").eng.Counters().PathRequestsForwarded, n.routesOf(r))
	}
}

// TestPathRequestLineHonest: without the attacker's copy the line works
// (the baseline of the attacks below).
func TestPathRequestLineHonest(t *testing.T) {
	findsTarget(t, squatNet(t, nil, 0))
}

// TestAttackPathRequestSquatOtherTarget: m sends b, ahead of the genuine
// request, a request under the same ID for another target. Before the
// fix b took it, dropped the genuine request as a duplicate, and r never
// heard of t.
func TestAttackPathRequestSquatOtherTarget(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.Target[0] ^= 0x5a
		pr.HopCount = 1
		return pr
	}, 0))
}

// TestAttackPathRequestSquatOtherSeqno: the same with another sequence
// number requirement (one the target cannot meet, so nobody answers it).
func TestAttackPathRequestSquatOtherSeqno(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.HasSeqno, pr.Seqno = true, 1<<31
		pr.HopCount = 1
		return pr
	}, 0))
}

// TestAttackPathRequestNoHopsLeft: m sends b the genuine request with its
// hop count at the limit. Before the fix b took it, did not pass it on
// (no hops left), and dropped the genuine copy with hops left as a
// duplicate.
func TestAttackPathRequestNoHopsLeft(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.HopCount = pr.HopLimit
		return pr
	}, 0))
}

// TestAttackPathRequestOneHopLeft: the same with one hop left: b passes
// m's copy on to c, which answers it to b, which answers m (which drops
// it). The genuine copy, with more hops left, must still be passed on and
// answered back to a.
func TestAttackPathRequestOneHopLeft(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.HopCount = pr.HopLimit - 1
		return pr
	}, 0))
}

// TestAttackPathRequestSquatAfter: m's copy for another target comes after
// the genuine one, before c's answer: it must not take the place of the
// genuine request in what b remembers for the answer.
func TestAttackPathRequestSquatAfter(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.Target[0] ^= 0x5a
		pr.HopCount = 1
		return pr
	}, 25*time.Millisecond))
}

// TestAttackPathRequestFresherAfter: m's copy claims more hops left than
// the genuine one (hop count 0, as if from r's neighbour) and comes after
// it, before c's answer: b passes it on again, but the answer must still
// go back to a as well as to m.
func TestAttackPathRequestFresherAfter(t *testing.T) {
	findsTarget(t, squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.HopCount = 0
		return pr
	}, 25*time.Millisecond))
}

// TestAttackPathRequestFresherFirst pins what the rule does not stop (the
// rushing attack, docs/routing.md): m races b a copy claiming more hops
// left than the genuine one (hop count 0). b takes it and passes it on,
// so the request loses no reach (c answers it), and then drops the
// genuine copy, with fewer hops left, as a duplicate without remembering
// its way: the answer goes back to m alone, and r gets no route. If this
// test fails because r got the route, the limit is gone: update the docs.
func TestAttackPathRequestFresherFirst(t *testing.T) {
	n := squatNet(t, func(pr protocol.PathRequest) protocol.PathRequest {
		pr.HopCount = 0
		return pr
	}, 0)
	r, tt := n.node("r"), n.node("t")
	n.send("r", "t", "hello")
	n.run(30 * time.Second)
	c := n.node("c").eng.Counters()
	if c.PathRequestsIn == 0 || c.PathRequestsAnswer == 0 {
		t.Fatalf("c took %d requests and answered %d: m's copy should keep the reach", c.PathRequestsIn, c.PathRequestsAnswer)
	}
	for _, rt := range r.eng.Routes() {
		if rt.Dest == tt.id.Address() {
			t.Fatalf("r got a route to t: the answer was not taken by m's copy")
		}
	}
}
