package routing_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestSessionRekeysInSession: a session in use for more than a key
// phase's lifetime (protocol.SessionRekeyAge, 24 h) is rekeyed inside the
// session (an X25519 exchange in two small control frames), not replaced
// by a new handshake, and every message is delivered exactly once across
// the rekey. Before in-session rekeys were wired, the engine replaced the
// session: a second init.
func TestSessionRekeysInSession(t *testing.T) {
	s := newScenario(t)
	do := func(line string) string {
		t.Helper()
		out, err := s.do(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return out
	}
	do("node a b")
	do("link a b tcp latency=10ms")
	do("run 1s")
	for range 55 { // every 30 min (IP sessions idle out after 1 h): 27 h
		do(`send a b "tick"`)
		do("run 30m quiet")
	}
	if got := do("messages summary"); !strings.Contains(got, "55 sent: 55 received once, 0 more than once, 0 not received; senders saw 55 delivered") {
		t.Fatalf("messages: %s", got)
	}
	got := do("counters a b SessionInitsOut SessionRekeys")
	for _, want := range []string{"a: SessionInitsOut=1 SessionRekeys=1", "b: SessionInitsOut=0 SessionRekeys=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("counters:\n%s\nwant a line %q", got, want)
		}
	}
}

// Attack: an acknowledgement of the previous key phase clears messages of
// the new one. Acknowledgements name counters without their phase and the
// counters start again at 0 after a rekey, while the previous phase's
// receive chain stays open for frames in flight. A neighbour that held
// back one of the responder's acknowledgements (or a late copy a relay
// passes on again) and lets a later, cumulative one through, so that the
// initiator rekeys, then replays the held one after the rekey: it names
// counters the new phase has used for messages that never arrived. Before
// the fix the initiator dropped their custody and reported them delivered.
func TestAttackSessionOldPhaseAck(t *testing.T) {
	n := sessionChain(t, 7, routing.LinkIP, 1)
	n.run(time.Hour)
	a, b := n.node("n0"), n.node("n1")
	isData := func(f []byte) bool { return len(f) > 5 && protocol.Kind(f[0]) == protocol.KindSessionData }
	var stale []byte
	dropAck, lose := false, false
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		switch {
		case from == b && dropAck && isData(tx.Frame) && b.eng.Counters().SessionRekeys == 0:
			stale, dropAck = bytes.Clone(tx.Frame), false
			return true
		case from == a && lose && isData(tx.Frame) && tx.Frame[5]&0x40 == 0:
			return true
		}
		return false
	}
	var sent []string
	i := 0
	for ; a.eng.Counters().SessionRekeys == 0; i++ {
		if i > 60 {
			t.Fatal("no rekey after 30 h")
		}
		dropAck = true
		for _, m := range []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)} {
			n.send("n0", "n1", m)
			sent = append(sent, m)
			n.run(2 * time.Second)
		}
		n.run(30 * time.Minute)
	}
	if stale == nil {
		t.Fatal("no acknowledgement of the first phase held back")
	}
	// The held-back acknowledgement names the old phase's counters up to
	// about 2i-1 (its bitmap the 64 below). Bring the new phase's counters
	// into that range with messages that arrive, then lose one there.
	for k := range 2*i - 8 {
		m := fmt.Sprintf("new%d", k)
		n.send("n0", "n1", m)
		sent = append(sent, m)
		n.run(2 * time.Second)
	}
	checkInbox(t, b, sent)
	before := deliveredEvents(a)
	lose = true
	n.send("n0", "n1", "after-rekey")
	n.run(time.Second)
	refused := a.eng.Counters().SessionFramesRefused
	n.step(a, routing.FrameReceived{Link: n.links[0].id, Frame: stale})
	if got := deliveredEvents(a) - before; got != 0 {
		t.Fatalf("a stale acknowledgement of the old key phase reported %d messages delivered that n1 never got", got)
	}
	if a.eng.Counters().SessionFramesRefused == refused {
		t.Error("the stale acknowledgement was not counted as refused")
	}
	lose = false
	n.run(10 * time.Minute)
	checkInbox(t, b, append(sent, "after-rekey"))
	if got := deliveredEvents(a) - before; got != 1 {
		t.Fatalf("%d delivered events after the rekey, want 1", got)
	}
}
