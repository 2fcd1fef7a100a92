package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Attack: the first hop answers every session init of ours with a reset
// (it could as well drop them, but resets make us start a new session
// at once). The initiator starts at most one session per reset gap, not one
// per reset, and a reset from any other link or with another index is
// ignored.
func TestAttackSessionResetLoop(t *testing.T) {
	n := sessionChain(t, 7, routing.LinkIP, 2)
	n.run(time.Hour)
	var labels []protocol.PathLabel
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from.name != "n0" || len(tx.Frame) == 0 || protocol.Kind(tx.Frame[0]) != protocol.KindSessionInit {
			return false
		}
		if in, err := protocol.ParseSessionInit(tx.Frame); err == nil {
			labels = append(labels, in.Label)
		}
		return true
	}
	src := n.node("n0")
	first := n.links[0].id // n0-n1
	before := src.eng.Counters().SessionInitsOut
	n.send("n0", "n2", "held up")
	const rounds = 200 // 10 s
	for range rounds {
		n.run(50 * time.Millisecond)
		got := labels
		labels = nil
		for _, label := range got {
			n.step(src, routing.FrameReceived{Link: first, Frame: protocol.AppendSessionReset(nil, label, true, 0)})
		}
	}
	inits := src.eng.Counters().SessionInitsOut - before
	if inits == 0 || inits > 10 {
		t.Fatalf("%d session inits in 10 s under %d resets, want 1..10", inits, src.eng.Counters().SessionResetsIn)
	}
}

// A relay that loses the link towards the responder resets the initiator
// at once; the initiator's next session carries the message as soon as the
// path is back, exactly once.
func TestSessionResetOnLinkDown(t *testing.T) {
	n := sessionChain(t, 8, routing.LinkIP, 3)
	n.run(time.Hour)
	n.send("n0", "n3", "first")
	n.run(time.Second)
	checkInbox(t, n.node("n3"), []string{"first"})
	cd := n.links[2] // n2-n3
	n.send("n0", "n3", "second")
	n.run(8 * time.Millisecond) // on its way: n0-n1 and n1-n2 take 5 ms each
	n.setLink(cd, false)
	if got := n.node("n2").eng.Counters().SessionResetsOut; got != 1 {
		t.Fatalf("relay n2 sent %d resets, want 1", got)
	}
	n.run(time.Second)
	if got := n.node("n0").eng.Counters().SessionResetsIn; got == 0 {
		t.Fatal("the initiator heard no reset")
	}
	n.setLink(cd, true)
	n.run(5 * time.Second)
	checkInbox(t, n.node("n3"), []string{"first", "second"})
}
