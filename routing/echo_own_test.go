package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestAttackEchoOwnFrames: n1, n0's only neighbour on the way to n2,
// passes n0's frames on and also sends each of them straight back to n0
// (every session frame, every envelope: those of a session message, of a
// sealed-sender message sealed at once, and of one that waited for n2's
// key). n0 must neither deliver nor forward any of its own messages (as
// a forwarder would: counted in Forwarded, queued to n1 again), and n2
// gets each message once.
func TestAttackEchoOwnFrames(t *testing.T) {
	n := sessionChain(t, 21, routing.LinkIP, 2)
	n0, n2 := n.node("n0"), n.node("n2")
	echoed := map[protocol.Kind]int{}
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from != n0 || echoed[protocol.Kind(tx.Frame[0])] >= 200 {
			return false
		}
		k, err := protocol.PeekKind(tx.Frame)
		if err != nil || (k != protocol.KindEnvelope && k != protocol.KindSessionData) {
			return false
		}
		echoed[k]++
		frame := append([]byte(nil), tx.Frame...)
		n.push(&event{at: n.now.Add(time.Millisecond), node: n0, in: routing.FrameReceived{Link: l.id, Frame: frame}})
		return false
	}
	// Before any route: n2's key is unknown, the envelope waits for it.
	n.step(n0, routing.SendRequest{Ref: 1, Dest: n2.id.Address(), Body: []byte("waited for the key"), SealedSender: true})
	n.run(time.Minute)
	n.step(n0, routing.SendRequest{Ref: 2, Dest: n2.id.Address(), Body: []byte("sealed at once"), SealedSender: true})
	n.step(n0, routing.SendRequest{Ref: 3, Dest: n2.id.Address(), Body: []byte("over the session")})
	n.run(10 * time.Minute)
	checkInbox(t, n2, []string{"waited for the key", "sealed at once", "over the session"})
	if len(n0.inbox) != 0 {
		t.Errorf("n0 delivered %d of its own messages: %q", len(n0.inbox), n0.inbox[0].Body)
	}
	c := n0.eng.Counters()
	t.Logf("echoed %v; n0: forwarded %d, duplicates %d, envelopes in %d, session frames in %d, refused %d, not for us %d",
		echoed, c.Forwarded, c.Duplicates, c.EnvelopesIn, c.SessionFramesIn, c.SessionFramesRefused, c.FramesNotForUs)
	if echoed[protocol.KindEnvelope] == 0 || echoed[protocol.KindSessionData] == 0 {
		t.Fatalf("nothing echoed: %v", echoed)
	}
	if c.Forwarded != 0 {
		t.Errorf("n0 forwarded %d of its own envelopes back out", c.Forwarded)
	}
	if got := deliveredEvents(n0); got != 3 {
		t.Errorf("n0 has %d delivered events, want 3", got)
	}
}

// TestAttackEchoOwnFallbackEnvelope: the same attack on a session
// message gone on as an envelope (its recipient, of an older version,
// never answers session inits): m sends a's envelope back to a as well as
// on to b. a must not forward it as if it were another node's.
func TestAttackEchoOwnFallbackEnvelope(t *testing.T) {
	n := newTestNet(t, 22)
	n.cfg = withSessions
	a, _ := n.addNode("a"), n.addNode("m")
	n.cfg = envelopes // an older version: no CapSessions3
	b := n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "m")
	ma := n.links[0]
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "m", "b")
	n.run(time.Minute)
	echoed := 0
	n.drop = func(from *tnode, l *tlink, tx routing.Transmit) bool {
		if from != a || len(tx.Frame) == 0 {
			return false
		}
		switch protocol.Kind(tx.Frame[0]) {
		case protocol.KindSessionInit:
			return true // b would not answer
		case protocol.KindEnvelope:
			if echoed++; echoed <= 50 {
				frame := append([]byte(nil), tx.Frame...)
				n.push(&event{at: n.now.Add(time.Millisecond), node: a, in: routing.FrameReceived{Link: ma.id, Frame: frame}})
			}
		}
		return false
	}
	n.send("a", "b", "one")
	n.run(30 * time.Minute)
	checkInbox(t, b, []string{"one"})
	c := a.eng.Counters()
	if c.SessionPeersFallback != 1 || echoed == 0 {
		t.Fatalf("fallbacks %d, envelopes echoed %d", c.SessionPeersFallback, echoed)
	}
	if c.Forwarded != 0 {
		t.Errorf("a forwarded %d of its own envelopes back out (%d echoed)", c.Forwarded, echoed)
	}
}
