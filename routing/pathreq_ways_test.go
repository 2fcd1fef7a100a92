package routing

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestAttackPathRequestWaysBackBound: the ways back an entry waiting for
// an answer remembers are at most the hop limit, even when the dedup space
// forgets the request while the entry waits. Requests with no hops left,
// on eight TCP links within every rate, turn the dedup space over every
// 128 s; a radio neighbour keeps one request waiting with a copy every
// 20 s, each naming another forwarder: one hop left (taken again once the
// dedup space forgot the request), else two more hops left than its last.
// Before the fix the entry gained a way back with every copy taken, past
// the hop limit and without bound (memory, and an answer queued on every
// way at each advert of the target), as long as the neighbour kept on.
func TestAttackPathRequestWaysBackBound(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, attackEpoch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: 1, Kind: LinkLoRa, Bitrate: 1760}}); err != nil {
		t.Fatal(err)
	}
	for l := LinkID(2); l <= 9; l++ {
		if err := e.Step(attackEpoch, LinkUp{Link: LinkInfo{ID: l, Kind: LinkTCP}}); err != nil {
			t.Fatal(err)
		}
	}
	e.Ready()
	e.Advance()
	r := rand.NewChaCha8([32]byte{3})
	now := attackEpoch.Add(time.Minute)
	step := func(l LinkID, pr protocol.PathRequest) {
		if err := e.Step(now, FrameReceived{Link: l, Frame: pr.AppendTo(nil)}); err != nil {
			t.Fatal(err)
		}
		if l == 1 {
			_ = e.Step(now, TxDone{Link: 1, Frames: 16})
		}
		e.Ready()
		e.Advance()
	}
	var dest Address
	dest[0] = 0x77
	pr := protocol.PathRequest{ID: [8]byte{0x5c}, Target: dest, HopLimit: protocol.MaxPathRequestHops}
	k := pathReqKey(pr)
	fwd := 0
	copyOf := func(left uint8) {
		fwd++
		pr.HopCount, pr.Forwarder = pr.HopLimit-left, Address{0x0f, byte(fwd), byte(fwd >> 8)}
		step(1, pr)
	}
	cur := uint8(1)
	copyOf(cur)
	for i := range 80 {
		// 20 s of junk with no hops left, 4 a second on each TCP link.
		for range 20 {
			now = now.Add(time.Second)
			for l := LinkID(2); l <= 9; l++ {
				for range 4 {
					var j protocol.PathRequest
					j.HopLimit, j.HopCount = 4, 4
					r.Read(j.ID[:])
					r.Read(j.Target[:])
					step(l, j)
				}
			}
			e.Tick(now)
			e.Ready()
			e.Advance()
		}
		// The attacker tries one hop left (taken if the dedup space
		// forgot the request), then the next copy of its round.
		dups := e.Counters().Duplicates
		copyOf(1)
		if e.Counters().Duplicates == dups {
			cur = 1
		} else if cur+reforwardMargin <= pr.HopLimit {
			cur += reforwardMargin
			copyOf(cur)
		}
		p, ok := e.pathReqs[k]
		if !ok {
			t.Fatalf("%d s: the request no longer waits", 20*(i+1))
		}
		if ways := 1 + len(p.more); ways > int(pr.HopLimit) {
			t.Fatalf("%d s: %d ways back remembered for one request, hop limit %d", 20*(i+1), ways, pr.HopLimit)
		}
	}
	if c := e.Counters(); c.PathRequestsLimited != 0 {
		t.Fatalf("%d requests limited: the test should run within the rates", c.PathRequestsLimited)
	}
}

// TestPathRequestOwnEchoed: the node's own request, echoed back by a
// neighbour with any hop count (0 too, as if from a requester of its
// own), is a duplicate: never passed on or answered by the node.
func TestPathRequestOwnEchoed(t *testing.T) {
	e := attackEngine(t)
	sender, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{3}))
	if err != nil {
		t.Fatal(err)
	}
	now := attackEpoch.Add(time.Minute)
	var dest Address
	dest[0] = 0x42
	_ = e.Step(now, FrameReceived{Link: 1, Frame: signedEnvelope(t, sender, 1, dest, now)})
	var own []byte
	for _, tx := range e.Ready().Transmits {
		if k, err := protocol.PeekKind(tx.Frame); err == nil && k == protocol.KindPathRequest {
			own = tx.Frame
		}
	}
	e.Advance()
	if own == nil {
		t.Fatal("no own path request sent")
	}
	pr, err := protocol.ParsePathRequest(own)
	if err != nil {
		t.Fatal(err)
	}
	for count := uint8(0); count <= pr.HopLimit; count++ {
		now = now.Add(time.Second)
		pr.HopCount = count
		dups := e.Counters().Duplicates
		_ = e.Step(now, FrameReceived{Link: 2, Frame: pr.AppendTo(nil)})
		per := map[LinkID]int{}
		if n := pathRequestsOut(e.Ready(), per); n != 0 || e.Counters().Duplicates != dups+1 {
			t.Fatalf("own request echoed with hop count %d: passed on %v, duplicates %d -> %d", count, per, dups, e.Counters().Duplicates)
		}
		e.Advance()
	}
}
