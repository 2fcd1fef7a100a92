package routing_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestSessionWindowEdgeRetired: a frame lost exactly 64 below the highest
// counter the recipient got. The acknowledgement names the highest and the
// 64 below it, so it still names the lost frame's counter (unset), and the
// sender keeps waiting for it; but the recipient's replay window
// (protocol.LiteReplayWindow) keeps only the 63 counters below the
// highest, so the sender's retries are refused as replays and answered
// with the same acknowledgement. Nothing else is sent, so the window never
// moves on: the session is dropped after sessionFailLimit retries and
// replaced by a new handshake, the failure the acknowledgement window
// rules (session_window.go) are there to prevent.
func TestSessionWindowEdgeRetired(t *testing.T) {
	for _, burst := range []int{64, 65, 66} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			n, na, nb, _ := sessionPair(t, true, nil)
			dropped := false
			n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
				k, _ := protocol.PeekKind(tx.Frame)
				if from == na && k == protocol.KindSessionData && !dropped {
					dropped = true // the first frame of the burst, once
					return true
				}
				return false
			}
			for i := range burst {
				n.send("a", "b", fmt.Sprintf("burst %d", i))
			}
			n.run(10 * time.Minute)
			checkSessionKept(t, na, nb, burst+1)
		})
	}
}

// TestSessionRekeyNotHeldByCancelledFrame: a message whose frame was lost
// is cancelled (or expires) before a retry brings it: nothing sends that
// frame again, so no acknowledgement will ever name it. When the key
// phase is then used up (here by age), holdForRekey holds every new
// message until the window is empty, which it never is: the messages wait
// until the session is idle long enough to be swept (SessionIdle, a day
// on LoRa) and a new handshake replaces it. Before the hold, the next
// message went in the old phase.
//
// Now such a frame is forgotten (waitsForFrames), and the rekey may be
// asked while it is still on its way: the recipient never names a frame of
// the previous phase in an acknowledgement
// (TestAttackSessionOrphanFrameAfterRekey).
func TestSessionRekeyNotHeldByCancelledFrame(t *testing.T) {
	n, na, nb, _ := sessionPair(t, false, func(c *routing.Config) { c.SessionIdle = 48 * time.Hour })
	n.send("a", "b", "warm up")
	n.run(protocol.SessionRekeyAge - 10*time.Minute)
	drop := true
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		k, _ := protocol.PeekKind(tx.Frame)
		return drop && from == na && k == protocol.KindSessionData
	}
	n.send("a", "b", "lost, then cancelled")
	drop = false
	cancelTheOne(t, n, na)
	n.run(20 * time.Minute) // the phase is used up (by age)
	n.send("a", "b", "after the phase")
	n.run(10 * time.Minute)
	if got := len(nb.inbox); got != 2 {
		t.Errorf("%d of 2 delivered 10 minutes after the send (counters %+v)", got, na.eng.Counters())
	}
	if c := na.eng.Counters(); c.SessionInitsOut != 1 {
		t.Errorf("SessionInitsOut=%d, want 1", c.SessionInitsOut)
	}
}

// TestSessionRestoredBurst: a burst of more frames than one
// acknowledgement names reaches a responder restored at a restart. The
// early acknowledgement (ackBefore) is the restored session's first seal,
// so it ends the session (endRestored) in the middle of the batch instead
// of sealing: no frame of b's under the restored state, every message
// delivered once over the new session.
func TestSessionRestoredBurst(t *testing.T) {
	n, na, nb, _ := sessionPair(t, true, nil)
	n.stop(nb)
	n.start(nb)
	n.run(time.Minute)
	var label []byte
	if c := na.eng.Counters(); c.SessionsEstablished != 1 {
		t.Fatalf("a: %d sessions before the burst, want its first kept", c.SessionsEstablished)
	}
	var toB []routing.Transmit
	sealedByB := 0
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		k, _ := protocol.PeekKind(tx.Frame)
		if from == na && k == protocol.KindSessionData {
			if label == nil {
				label = append([]byte(nil), tx.Frame[1:5]...)
			}
			toB = append(toB, tx)
			return true
		}
		if from == nb && k == protocol.KindSessionData && string(tx.Frame[1:5]) == string(label) {
			sealedByB++
		}
		return false
	}
	const burst = 100
	for i := range burst {
		n.send("a", "b", fmt.Sprintf("burst %d", i))
	}
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		k, _ := protocol.PeekKind(tx.Frame)
		if from == nb && k == protocol.KindSessionData && string(tx.Frame[1:5]) == string(label) {
			sealedByB++
		}
		return false
	}
	for _, tx := range toB {
		_ = nb.eng.Step(n.now, routing.FrameReceived{Link: tx.Link, Frame: tx.Frame})
	}
	n.process(nb)
	n.run(time.Hour)
	if sealedByB != 0 {
		t.Errorf("b sealed %d frames under its restored session", sealedByB)
	}
	seen := map[string]int{}
	for _, d := range nb.inbox {
		seen[string(d.Body)]++
	}
	for body, k := range seen {
		if k > 1 {
			t.Errorf("%q delivered %d times", body, k)
		}
	}
	if len(seen) != burst+1 {
		t.Errorf("%d of %d delivered", len(seen), burst+1)
	}
	if left := len(na.eng.Outbox()); left != 0 {
		t.Errorf("%d messages left in custody", left)
	}
	c := nb.eng.Counters()
	t.Logf("b: SessionResetsOut=%d SessionUnknown=%d Delivered=%d reset frames=%d; a: SessionResetsIn=%d SessionsEstablished=%d",
		c.SessionResetsOut, c.SessionUnknown, c.Delivered, n.kinds[protocol.KindSessionReset], na.eng.Counters().SessionResetsIn, na.eng.Counters().SessionsEstablished)
	// One reset for the batch: the frames after the first that ended the
	// session reach an unknown label, and each used to send its own (35
	// here), airtime on a radio for nothing.
	if got := n.kinds[protocol.KindSessionReset]; got != 1 {
		t.Errorf("b sent %d resets for one lost session, want 1", got)
	}
}

// TestSessionAckBeyondSent: an acknowledgement naming a counter the
// initiator never sealed in this phase can only come from a hostile
// recipient (it holds the keys). retireBelow trusts its window, so each
// such acknowledgement, one small frame, makes the initiator send every
// message in flight again at once, outside its retry schedule, and again
// for the next one: an amplifier against the relays of the path.
func TestSessionAckBeyondSent(t *testing.T) {
	n := newTestNet(t, 1)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	na, nb := n.addNode("a"), n.addNode("b")
	l := n.addLink(routing.LinkIP, 0, 0, "a", "b")
	n.run(time.Minute)
	n.send("a", "b", "warm up")
	n.run(time.Minute)
	dataOut := 0
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		k, _ := protocol.PeekKind(tx.Frame)
		if from == na && k == protocol.KindSessionData {
			dataOut++
			return true // b never gets them
		}
		return false
	}
	const inFlight = 100
	for i := range inFlight {
		n.send("a", "b", fmt.Sprintf("m %d", i))
	}
	sent := dataOut
	for range 10 {
		f := routing.SealSessionAckForTest(nb.eng, na.id.Address(), protocol.SessionAck{Next: 1 << 30})
		if f == nil {
			t.Fatal("no session at b")
		}
		n.step(na, routing.FrameReceived{Link: l.id, Frame: f})
	}
	if again := dataOut - sent; again > 0 {
		t.Errorf("10 acknowledgements of counters never sent made a send %d frames again (%d in flight)", again, inFlight)
	}
}

// Attack: a relay holds back a frame of the old key phase whose message
// the sender gave up (cancelled), lets the rekey through, drops the new
// phase's frame with the same counter, then releases the old one. The
// recipient opens it with the previous phase's chain. Acknowledgements
// name counters without their phase: had it named that counter in the new
// phase's acknowledgement, the sender would clear the new message that
// never arrived.
func TestAttackSessionOrphanFrameAfterRekey(t *testing.T) {
	n, na, nb, l := sessionPair(t, false, func(c *routing.Config) { c.SessionIdle = 48 * time.Hour })
	n.send("a", "b", "warm up")
	n.run(protocol.SessionRekeyAge - 10*time.Minute)
	isData := func(tx routing.Transmit) bool {
		k, _ := protocol.PeekKind(tx.Frame)
		return k == protocol.KindSessionData && tx.Frame[5]&0x40 == 0 // not control
	}
	var held []byte
	loseCounter := -1
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		if from != na || !isData(tx) {
			return false
		}
		c := int(tx.Frame[6])<<24 | int(tx.Frame[7])<<16 | int(tx.Frame[8])<<8 | int(tx.Frame[9])
		switch {
		case held == nil:
			held = bytes.Clone(tx.Frame)
			return true
		case na.eng.Counters().SessionRekeys > 0 && c == loseCounter:
			return true
		}
		return false
	}
	n.send("a", "b", "given up")
	if held == nil {
		t.Fatal("no frame held back")
	}
	oldCounter := int(held[6])<<24 | int(held[7])<<16 | int(held[8])<<8 | int(held[9])
	cancelTheOne(t, n, na)
	n.run(20 * time.Minute) // the phase is used up (by age)
	loseCounter = oldCounter
	var sent []string
	for i := 0; i <= oldCounter; i++ { // the new phase reaches the held frame's counter
		m := fmt.Sprintf("new phase %d", i)
		n.send("a", "b", m)
		sent = append(sent, m)
		n.run(time.Second)
	}
	if na.eng.Counters().SessionRekeys == 0 {
		t.Fatal("no rekey")
	}
	before := deliveredEvents(na)
	n.step(nb, routing.FrameReceived{Link: l.id, Frame: held})
	n.run(time.Second)
	if got := deliveredEvents(na) - before; got != 0 {
		t.Fatalf("the old phase's frame, released after the rekey, cleared %d new messages b never got", got)
	}
	n.drop = nil
	n.run(10 * time.Minute)
	checkInbox(t, nb, append([]string{"warm up", "given up"}, sent...))
}

// sessionPair is two nodes a and b on an IP link with sessions on (cfg,
// if given, changes both configurations further); with warm set, a's
// first message ("warm up") has set the session up and is delivered.
func sessionPair(t *testing.T, warm bool, cfg func(*routing.Config)) (n *testNet, na, nb *tnode, l *tlink) {
	t.Helper()
	n = newTestNet(t, 1)
	n.cfg = func(c *routing.Config) {
		c.NoSessions = false
		if cfg != nil {
			cfg(c)
		}
	}
	na, nb = n.addNode("a"), n.addNode("b")
	l = n.addLink(routing.LinkIP, 0, 0, "a", "b")
	n.run(time.Minute)
	if warm {
		n.send("a", "b", "warm up")
		n.run(time.Minute)
	}
	return n, na, nb, l
}

// checkSessionKept checks that every one of want messages reached b, none
// is left in a's custody, and a's first session carried them all.
func checkSessionKept(t *testing.T, na, nb *tnode, want int) {
	t.Helper()
	c := na.eng.Counters()
	if got := len(nb.inbox); got != want {
		t.Errorf("%d of %d delivered", got, want)
	}
	if left := len(na.eng.Outbox()); left != 0 {
		t.Errorf("%d messages left in custody", left)
	}
	if c.SessionsDropped != 0 || c.SessionInitsOut != 1 {
		t.Errorf("SessionsDropped=%d SessionInitsOut=%d, want 0 and 1: the session was replaced", c.SessionsDropped, c.SessionInitsOut)
	}
}

// cancelTheOne cancels the one message in a's custody.
func cancelTheOne(t *testing.T, n *testNet, na *tnode) {
	t.Helper()
	out := na.eng.Outbox()
	if len(out) != 1 {
		t.Fatalf("outbox %d, want the one message", len(out))
	}
	if _, err := na.eng.Cancel(n.now, out[0].ID); err != nil {
		t.Fatal(err)
	}
}
