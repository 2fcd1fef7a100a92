package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// A peer of an older version (it does not announce CapSessions3) refuses
// our inits (it does not know modes 3 and 4 of key schedule 3) and answers
// nothing, as if they were lost. Before
// the fallback, a's message waited in custody for ever, one lapsed
// handshake after another; now, after two lapsed handshakes, it goes on as
// a sealed envelope, is delivered once, and the next message to that peer
// is an envelope from the start.
func TestSessionOldPeerFallback(t *testing.T) {
	n := newTestNet(t, 21)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a := n.addNode("a")
	// An older version does not announce CapSessions3; NoSessions does not
	// either (b's own messages are not what this test is about).
	n.cfg = func(c *routing.Config) { c.NoSessions = true }
	b := n.addNode("b")
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

// Attack: a relay (here: the link) drops the accepts of a peer that
// announces key schedule 3, so every handshake to it lapses. The peer is
// not an older version, so the initiator must not fall back to sealed
// envelopes (sealed to the peer's long-term key: no forward secrecy); it
// tries sessions in modes 1 and 2 (what an older relay on the path would
// pass) and otherwise keeps the message in custody. Once the accepts pass
// again, the message goes over a session.
func TestAttackSessionFallbackDowngrade(t *testing.T) {
	n := newTestNet(t, 23)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a, b := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Minute)
	var envelopes int
	modes := map[protocol.SessionMode]int{}
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		if len(tx.Frame) == 0 {
			return false
		}
		if from == a && protocol.Kind(tx.Frame[0]) == protocol.KindEnvelope {
			envelopes++
		}
		if from == a && protocol.Kind(tx.Frame[0]) == protocol.KindSessionInit {
			modes[protocol.SessionMode(tx.Frame[22])]++
		}
		return from == b && protocol.Kind(tx.Frame[0]) == protocol.KindSessionAccept
	}
	n.send("a", "b", "one")
	n.run(30 * time.Minute)
	c := a.eng.Counters()
	if envelopes != 0 || c.SessionPeersFallback != 0 || len(b.inbox) != 0 {
		t.Fatalf("%d envelopes, %d fallbacks, %d delivered: the dropped accepts forced envelopes", envelopes, c.SessionPeersFallback, len(b.inbox))
	}
	if c.SessionHandshakesLapsed < 2 || modes[protocol.SessionModeXWing] == 0 || modes[protocol.SessionModeXWingV2] == 0 {
		t.Fatalf("%d lapsed handshakes, inits by mode %v: want mode 4, then 2", c.SessionHandshakesLapsed, modes)
	}
	n.drop = nil
	n.run(30 * time.Minute)
	checkInbox(t, b, []string{"one"})
	if a.eng.Counters().SessionsEstablished != 1 {
		t.Fatal("no session once the accepts passed")
	}
}

// Two lapsed handshakes far apart are not "in a row": a peer of an older
// version whose first init to it is lost, and whose message then expires,
// must not be cut off from sessions by one more lost init hours later
// (before the fix the count never aged: any second lapse, even a week
// later, sent its messages as envelopes for an hour).
func TestSessionLapsesAge(t *testing.T) {
	n := newTestNet(t, 25)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a := n.addNode("a")
	n.cfg = func(c *routing.Config) { c.NoSessions = true }
	b := n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Minute)
	dropInits := 1 << 30
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		if from != a || len(tx.Frame) == 0 || tx.Frame[0] != byte(protocol.KindSessionInit) || dropInits == 0 {
			return false
		}
		dropInits--
		return true
	}
	// One init, lost; the message expires before a retry.
	n.step(a, routing.SendRequest{Ref: 1, Dest: b.id.Address(), Body: []byte("lost"), TTL: 5 * time.Second})
	n.run(10 * time.Minute)
	if c := a.eng.Counters(); c.SessionHandshakesLapsed != 1 || c.SessionPeersFallback != 0 {
		t.Fatalf("set-up: %d lapsed handshakes, %d fallbacks; want 1, 0", c.SessionHandshakesLapsed, c.SessionPeersFallback)
	}
	// Hours later one more init is lost, the next passes.
	n.run(3 * time.Hour) // more than lapsesAge (2 h with the default RetryMax)
	dropInits = 1
	n.send("a", "b", "later")
	n.run(30 * time.Minute)
	checkInbox(t, b, []string{"later"})
	c := a.eng.Counters()
	if c.SessionPeersFallback != 0 || c.SessionsEstablished != 1 {
		t.Fatalf("%d fallbacks, %d sessions: two lapses hours apart counted as in a row", c.SessionPeersFallback, c.SessionsEstablished)
	}
}
