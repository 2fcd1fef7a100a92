package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// reopenedRelay builds a - b over a radio, b - c over IP, carries a first
// message from a to c over a session relayed by b, then takes b's radio
// down (a's modem stays), has a send a second message while it is, and
// brings b's radio back under a new link id, as the daemon does when a
// modem is unplugged and plugged in again. It returns the net and how
// long after the radio came back c had the second message (0: not within
// limit).
func reopenedRelay(t *testing.T, limit time.Duration) (*testNet, time.Duration) {
	n := newTestNet(t, 16)
	n.cfg = withSessions
	for _, nm := range []string{"a", "b", "c"} {
		n.addNode(nm)
	}
	radio := n.addLink(routing.LinkLoRa, 0, 0, "a", "b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	n.run(time.Hour)
	n.send("a", "c", "first")
	n.run(time.Minute)
	checkInbox(t, n.node("c"), []string{"first"})
	if n.node("b").eng.Counters().SessionFramesRelayed == 0 {
		t.Fatal("b relayed no session frame: the test does not test a session relay")
	}
	b := n.node("b")
	unplugged := true
	n.drop = func(_ *tnode, l *tlink, _ routing.Transmit) bool { return unplugged && l == radio }
	n.step(b, routing.LinkDown{Link: radio.id})
	n.send("a", "c", "second")
	n.run(time.Second)
	unplugged = false
	n.reopen(b, radio, 100)
	for waited := time.Duration(0); waited < limit; waited += time.Second {
		if len(n.node("c").inbox) == 2 {
			return n, waited
		}
		n.run(time.Second)
	}
	return n, 0
}

// A relay whose link back towards the initiator came back under a new id
// (its radio reopened) answers the initiator's frames of the old path
// with a reset, so the initiator starts a new session over it at once:
// the message sent while the radio was away arrives within a minute of
// its return, exactly once (8 s), rather than when the initiator's
// unanswered retries make it give the session up (4 min 18 s here; 8 and
// 15 minutes in the README's LoRa walkthrough).
func TestSessionRelayLinkReopened(t *testing.T) {
	n, took := reopenedRelay(t, 30*time.Minute)
	if took == 0 {
		t.Fatal("the message sent while the relay's radio was away never arrived")
	}
	t.Logf("delivered %v after the radio came back; b: %d resets out, %d frames not for it; a: %d resets in",
		took, n.node("b").eng.Counters().SessionResetsOut, n.node("b").eng.Counters().FramesNotForUs,
		n.node("a").eng.Counters().SessionResetsIn)
	if took > time.Minute {
		t.Fatalf("delivered %v after the radio came back, want within a minute", took)
	}
	n.run(time.Hour)
	checkInbox(t, n.node("c"), []string{"first", "second"})
}

// Attack: a neighbour d of the relay b replays a's session frames, label
// and index, on its own link. While b's link towards a is up they are
// dropped; once it is gone b answers them with resets on d's link only, at
// most one per reset gap however many frames come, passes none on and
// never sends the path's traffic to d.
func TestAttackSessionRelayOrphanSquat(t *testing.T) {
	sent := map[*tlink][256]int{} // by b, per link and kind
	sq := newSquat(t, 17, func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from.name == "b" && len(tx.Frame) > 0 {
			k := sent[l]
			k[tx.Frame[0]]++
			sent[l] = k
		}
		return false
	})
	n, radio, bc, db := sq.n, sq.radio, sq.bc, sq.db
	b := n.node("b")
	replay := func(k int) {
		for range k {
			for _, f := range sq.fromA {
				n.step(b, routing.FrameReceived{Link: db.id, Frame: append([]byte(nil), f...)})
			}
		}
	}
	before := b.eng.Counters()
	replay(10)
	n.run(time.Second)
	if got := b.eng.Counters(); got.SessionResetsOut != before.SessionResetsOut || got.SessionFramesRelayed != before.SessionFramesRelayed {
		t.Fatalf("while b's radio is up, d's replays made b send %d resets and relay %d frames, want none",
			got.SessionResetsOut-before.SessionResetsOut, got.SessionFramesRelayed-before.SessionFramesRelayed)
	}
	n.step(b, routing.LinkDown{Link: radio.id}) // b's modem unplugged; a keeps its own
	sent = map[*tlink][256]int{}
	before = b.eng.Counters()
	const rounds = 10 // 10 replays every 500 ms for 5 s: two or three reset gaps
	for range rounds {
		replay(10)
		n.run(500 * time.Millisecond)
	}
	got := b.eng.Counters()
	resets := sent[db][protocol.KindSessionReset]
	if resets == 0 || resets > 3 || int(got.SessionResetsOut-before.SessionResetsOut) != resets {
		t.Fatalf("b sent %d resets on d's link (%d in all) for %d replays in 5 s, want 1..3, all on d's link",
			resets, got.SessionResetsOut-before.SessionResetsOut, rounds*10*len(sq.fromA))
	}
	if got.SessionFramesRelayed != before.SessionFramesRelayed || sent[db][protocol.KindSessionData] != 0 || sent[bc][protocol.KindSessionData] != 0 {
		t.Fatalf("b passed replays on: %d relayed, %d data frames to d, %d to c",
			got.SessionFramesRelayed-before.SessionFramesRelayed, sent[db][protocol.KindSessionData], sent[bc][protocol.KindSessionData])
	}
}

// squat is a - b over a radio, b - c and d - b over IP, after a carried a
// first message to c over a session b relays; fromA are a's session data
// frames on the radio until then.
type squat struct {
	n             *testNet
	radio, bc, db *tlink
	fromA         [][]byte
}

// newSquat builds a squat; drop, if set, then decides on every frame sent
// (n.drop), after a's on the radio were noted.
func newSquat(t *testing.T, seed uint64, drop func(*tnode, *tlink, routing.Transmit) bool) *squat {
	n := newTestNet(t, seed)
	n.cfg = withSessions
	for _, nm := range []string{"a", "b", "c", "d"} {
		n.addNode(nm)
	}
	sq := &squat{n: n}
	sq.radio = n.addLink(routing.LinkLoRa, 0, 0, "a", "b")
	sq.bc = n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	sq.db = n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "d", "b")
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from.name == "a" && l == sq.radio && len(tx.Frame) > 0 && protocol.Kind(tx.Frame[0]) == protocol.KindSessionData {
			sq.fromA = append(sq.fromA, append([]byte(nil), tx.Frame...))
		}
		return drop != nil && drop(from, l, tx)
	}
	n.run(time.Hour)
	n.send("a", "c", "first")
	n.run(time.Minute)
	checkInbox(t, n.node("c"), []string{"first"})
	if len(sq.fromA) == 0 {
		t.Fatal("a sent no session data frame on the radio")
	}
	return sq
}

// A relay on one radio between a and c, which do not hear each other,
// relays the path from the radio back onto it. When its radio reopens
// under a new id the entry's links both ways are gone, so it cannot reset
// a then; it keeps the entry and answers a's next frame with a reset, so a
// gives the path up at once. (Its new session then waits for b to learn a
// route to c again over the new link, at c's next announce: b's routes
// went with the old link. Delivered 4 min after the radio came back here,
// against 8 min 12 s without the reset.)
func TestSessionRelayRadioReopened(t *testing.T) {
	n := newTestNet(t, 18)
	n.cfg = withSessions
	for _, nm := range []string{"a", "b", "c"} {
		n.addNode(nm)
	}
	n.deaf = func(from, to *tnode, _ *tlink) bool {
		return from.name == "a" && to.name == "c" || from.name == "c" && to.name == "a"
	}
	radio := n.addLink(routing.LinkLoRa, 0, 0, "a", "b", "c")
	n.run(time.Hour)
	n.send("a", "c", "first")
	n.run(time.Minute)
	checkInbox(t, n.node("c"), []string{"first"})
	a, b := n.node("a"), n.node("b")
	if b.eng.Counters().SessionFramesRelayed == 0 {
		t.Fatal("b relayed no session frame: the test does not test a session relay")
	}
	unplugged := true
	n.drop = func(from *tnode, l *tlink, _ routing.Transmit) bool { return unplugged && (from == b || from == a) }
	n.step(b, routing.LinkDown{Link: radio.id})
	n.send("a", "c", "second")
	n.run(time.Second)
	unplugged = false
	n.reopen(b, radio, 100)
	before := a.eng.Counters().SessionResetsIn
	n.run(10 * time.Second)
	if got := a.eng.Counters().SessionResetsIn - before; got != 1 {
		t.Fatalf("a heard %d resets in the 10 s after b's radio came back, want 1 (b sent %d)", got, b.eng.Counters().SessionResetsOut)
	}
	n.run(time.Hour)
	checkInbox(t, n.node("c"), []string{"first", "second"})
}
