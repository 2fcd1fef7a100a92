package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// A peer of an older version refuses our inits (it does not know modes 3
// and 4 of key schedule 3) and answers nothing, as if they were lost. Before
// the fallback, a's message waited in custody for ever, one lapsed
// handshake after another; now, after two lapsed handshakes, it goes on as
// a sealed envelope, is delivered once, and the next message to that peer
// is an envelope from the start.
func TestSessionOldPeerFallback(t *testing.T) {
	n := newTestNet(t, 21)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a, b := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Minute)
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		return from == a && len(tx.Frame) > 0 && tx.Frame[0] == byte(protocol.KindSessionInit)
	}
	n.send("a", "b", "one")
	n.run(30 * time.Minute)
	checkInbox(t, b, []string{"one"})
	c := a.eng.Counters()
	if c.SessionPeersFallback != 1 || c.SessionHandshakesLapsed < 2 || c.SessionsEstablished != 0 {
		t.Fatalf("fallbacks %d, lapsed handshakes %d, sessions %d", c.SessionPeersFallback, c.SessionHandshakesLapsed, c.SessionsEstablished)
	}
	inits := c.SessionInitsOut
	n.send("a", "b", "two")
	n.run(time.Minute)
	checkInbox(t, b, []string{"one", "two"})
	if got := a.eng.Counters().SessionInitsOut; got != inits {
		t.Fatalf("%d more inits for a peer that does not answer them", got-inits)
	}
	if left := a.eng.Outbox(); len(left) != 0 {
		t.Fatalf("still in custody: %+v", left)
	}
	// After noSessionsFor, sessions are tried again: the peer may have
	// been upgraded (here: its inits pass again).
	n.drop = nil
	n.run(time.Hour)
	n.send("a", "b", "three")
	n.run(5 * time.Minute)
	checkInbox(t, b, []string{"one", "two", "three"})
	if a.eng.Counters().SessionsEstablished != 1 {
		t.Fatal("no session after the fallback ran out")
	}
}
