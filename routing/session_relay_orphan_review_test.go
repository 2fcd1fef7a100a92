package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Attack: a neighbour d of the relay b, on its own link, replays a's
// session frames (label and index overheard on the radio) every half
// second while b's radio is away and after it came back under a new id.
// b answers d's copies with resets on d's link; they must not use up the
// reset a's own frames on the new radio link need (one per label per
// gap): a must still hear a reset and have its message delivered within a
// minute of the radio's return, not when its unanswered retries make it
// give the session up minutes later.
func TestAttackSessionRelayOrphanResetStarved(t *testing.T) {
	n := newTestNet(t, 16)
	n.cfg = withSessions
	for _, nm := range []string{"a", "b", "c", "d"} {
		n.addNode(nm)
	}
	radio := n.addLink(routing.LinkLoRa, 0, 0, "a", "b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	db := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "d", "b")
	var fromA [][]byte
	unplugged := false
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from.name == "a" && l == radio && len(tx.Frame) > 0 && protocol.Kind(tx.Frame[0]) == protocol.KindSessionData {
			fromA = append(fromA, append([]byte(nil), tx.Frame...))
		}
		return unplugged && l == radio
	}
	n.run(time.Hour)
	n.send("a", "c", "first")
	n.run(time.Minute)
	checkInbox(t, n.node("c"), []string{"first"})
	if len(fromA) == 0 {
		t.Fatal("a sent no session data frame on the radio")
	}
	b, a := n.node("b"), n.node("a")
	replayed := append([][]byte(nil), fromA...)
	wait := func(d time.Duration) {
		for end := n.now.Add(d); n.now.Before(end); {
			for _, f := range replayed {
				n.step(b, routing.FrameReceived{Link: db.id, Frame: append([]byte(nil), f...)})
			}
			n.run(500 * time.Millisecond)
		}
	}
	unplugged = true
	n.step(b, routing.LinkDown{Link: radio.id})
	n.send("a", "c", "second")
	wait(time.Second)
	unplugged = false
	n.reopen(b, radio, 100)
	before := a.eng.Counters().SessionResetsIn
	for waited := time.Duration(0); len(n.node("c").inbox) < 2; waited += time.Second {
		if waited >= time.Minute {
			t.Fatalf("with d replaying on its link, a's message had not arrived a minute after b's radio came back (a heard %d resets, b sent %d)",
				a.eng.Counters().SessionResetsIn-before, b.eng.Counters().SessionResetsOut)
		}
		wait(time.Second)
	}
	n.run(time.Hour)
	checkInbox(t, n.node("c"), []string{"first", "second"})
}
