package routing_test

import (
	"testing"
	"time"

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
	unplugged := false
	sq := newSquat(t, 16, func(_ *tnode, l *tlink, _ routing.Transmit) bool { return unplugged && l.kind == routing.LinkLoRa })
	n, radio, db := sq.n, sq.radio, sq.db
	fromA := sq.fromA
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
