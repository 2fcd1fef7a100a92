package routing

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// Review of path discovery without floods (docs/routing.md section 3).

// radioEngine is an engine with one LoRa radio (link 1), as a LoRa node
// has: every neighbour is on the same shared link.
func radioEngine(t *testing.T) *Engine {
	t.Helper()
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
	e.Ready()
	e.Advance()
	return e
}

// keyAdvertsOut counts the adverts of dest carrying its KEM key that e
// sent, by the neighbour they went to (zero: broadcast), reassembling
// fragments and unwrapping hop frames.
func keyAdvertsOut(rd Ready, now time.Time, re *protocol.Reassembler, dest Address, out map[Address]int) {
	for _, tx := range rd.Transmits {
		f, to := tx.Frame, Address{}
		if k, _ := protocol.PeekKind(f); k == protocol.KindFragment {
			obj, err := re.Add(now, "e", f)
			if err != nil || obj == nil {
				continue
			}
			f = obj
		}
		if k, _ := protocol.PeekKind(f); k == protocol.KindHop {
			next, in, err := protocol.ParseHop(f)
			if err != nil {
				continue
			}
			f, to = in, next
		}
		if k, _ := protocol.PeekKind(f); k != protocol.KindAdvert {
			continue
		}
		if a, err := protocol.ParseAdvert(f); err == nil && a.Announce.Address() == dest && a.Announce.KEMKey != nil {
			out[to]++
		}
	}
}

// TestAttackOverheardAnswerHiddenTerminal: on one radio, F (the engine)
// passed on a key request that forwarder U named itself in. X, a neighbour
// of F that U does not hear (a hidden terminal: the usual case on a
// multi-hop radio), broadcasts T's advert with the key (a periodic advert,
// a propagation, or an answer to F merged with one; a liar can also replay
// T's signed announce at will). F must still pass the key on to U: a
// broadcast is never the answer to U's copy of the request, which goes to
// U hop-wrapped. Before the fix F counted it as overheard, dropped the
// request and sent only its compact advert: U, and the requester behind
// it, never got the key (asked again a minute later, or never on a lossy
// line).
func TestAttackOverheardAnswerHiddenTerminal(t *testing.T) {
	e := radioEngine(t)
	target, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	u, x := protocol.Address{0x0b, 1}, protocol.Address{0x0c, 2}
	now := attackEpoch.Add(time.Minute)
	pr := protocol.PathRequest{ID: [8]byte{9}, Target: target.Address(), HopLimit: 8, HopCount: 1, WantKEMKey: true, Forwarder: u}
	if err := e.Step(now, FrameReceived{Link: 1, Frame: pr.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.Advance()
	a, err := protocol.NewAnnounce(target, protocol.AnnounceOptions{Sequence: 3, Timestamp: protocol.TimestampOf(now), IncludeKEMKey: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if err := e.Step(now, FrameReceived{Link: 1, Frame: protocol.AppendAdvert(nil, x, 1, raw)}); err != nil {
		t.Fatal(err)
	}
	out := map[Address]int{}
	re := protocol.NewReassembler(protocol.ReassemblerConfig{})
	for range 60 { // ten minutes of advert budget
		keyAdvertsOut(e.Ready(), now, re, target.Address(), out)
		e.Advance()
		now = now.Add(10 * time.Second)
		if err := e.Step(now, TxDone{Link: 1, Frames: 16}); err != nil {
			t.Fatal(err)
		}
	}
	if out[u]+out[Address{}] == 0 {
		t.Fatalf("key adverts sent %v (overheard %d): U, which passed the request on, never got the key",
			out, e.Counters().PathRequestsOverheard)
	}
}

// pathRequestsSent counts e's path requests in rd: flooded (broadcast) and
// hop-wrapped to one neighbour.
func pathRequestsSent(rd Ready) (flooded, along int) {
	for _, tx := range rd.Transmits {
		f := tx.Frame
		wrapped := false
		if k, _ := protocol.PeekKind(f); k == protocol.KindHop {
			_, in, err := protocol.ParseHop(f)
			if err != nil {
				continue
			}
			f, wrapped = in, true
		}
		if k, _ := protocol.PeekKind(f); k != protocol.KindPathRequest {
			continue
		}
		if wrapped {
			along++
		} else {
			flooded++
		}
	}
	return flooded, along
}

// TestAttackPlantedRouteStallsKeyRequests: a liar on the radio replays the
// target's signed (compact) announce as its own route and keeps it fresh,
// and swallows what it is sent. The node lacks the target's KEM key, so
// its first message waits for a key request. A request goes along the
// route the node has (hop-wrapped to the liar); when such requests bring
// nothing, the node must flood again within minutes, so that honest
// neighbours (or the target) can answer. Before the fix every request went
// to the liar for as long as it kept its route alive: no key, so no data
// frame, so nothing ever showed that the liar does not forward (data sent
// through a next hop that does not pass it on loses its route).
func TestAttackPlantedRouteStallsKeyRequests(t *testing.T) {
	e := radioEngine(t)
	target, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{5}))
	if err != nil {
		t.Fatal(err)
	}
	liar := protocol.Address{0x1a, 7}
	now := attackEpoch.Add(time.Minute)
	a, err := protocol.NewAnnounce(target, protocol.AnnounceOptions{Sequence: 3, Timestamp: protocol.TimestampOf(now)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	plant := func() {
		if err := e.Step(now, FrameReceived{Link: 1, Frame: protocol.AppendAdvert(nil, liar, 0, raw)}); err != nil {
			t.Fatal(err)
		}
	}
	plant()
	if err := e.Step(now, SendRequest{Ref: 1, Dest: target.Address(), Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	flooded, along := 0, 0
	for range 60 * 6 { // an hour
		f, a := pathRequestsSent(e.Ready())
		flooded, along = flooded+f, along+a
		e.Advance()
		now = now.Add(10 * time.Second)
		plant()
		if err := e.Step(now, TxDone{Link: 1, Frames: 16}); err != nil {
			t.Fatal(err)
		}
		e.Tick(now)
	}
	if along == 0 {
		t.Fatalf("no request along the planted route (%d flooded): the test no longer plants one", flooded)
	}
	if flooded == 0 {
		t.Fatalf("%d key requests in an hour, all hop-wrapped to the liar; none flooded", along)
	}
}
