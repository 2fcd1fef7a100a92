package routing_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// The responder's session state is encoded once per Ready (however many
// frames it opened and sealed in it). A responder that crashes right after
// a Ready of five deliveries and one acknowledgement, whose
// acknowledgement is lost, restarts from that Ready's state: the five
// frames replayed are refused, nothing is delivered twice, and no counter
// of its sending chain is ever used for two different frames (a state
// from before the batch would seal its next acknowledgement under the lost
// one's counter, with another key stream: key reuse).
func TestSessionStateBatchRestart(t *testing.T) {
	n := newTestNet(t, 31)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a, b := n.addNode("a"), n.addNode("b")
	l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Minute)
	n.send("a", "b", "warm up")
	n.run(time.Minute)
	sent := map[[9]byte][]byte{} // b's data frames by label, key phase and counter
	check := func(f []byte) {
		if len(f) < protocol.SessionFrameOverhead || f[0] != byte(protocol.KindSessionData) {
			return
		}
		var k [9]byte
		copy(k[:4], f[1:5])
		k[4] = f[5] & 0x20
		copy(k[5:], f[6:10])
		if old, ok := sent[k]; ok && !bytes.Equal(old, f) {
			t.Fatalf("b sealed two frames under counter %d of label %x", binary.BigEndian.Uint32(f[6:10]), f[1:5])
		}
		sent[k] = append([]byte(nil), f...)
	}
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		if from == b {
			check(tx.Frame)
		}
		return false
	}
	// Five messages in one batch each way, by hand: a's frames reach b,
	// b's Ready is made durable, its acknowledgement is lost.
	for i := range 5 {
		if err := a.eng.Step(n.now, routing.SendRequest{Ref: uint64(100 + i), Dest: b.id.Address(), Body: []byte{'m', '0' + byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	frames := carry(a)
	if len(frames) != 5 {
		t.Fatalf("%d frames from a", len(frames))
	}
	for _, f := range frames {
		if err := b.eng.Step(n.now, routing.FrameReceived{Link: l.id, Frame: f}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range carry(b) {
		check(f) // the acknowledgement, lost with the crash
	}
	n.stop(b)
	n.start(b)
	refused := b.eng.Counters().SessionFramesRefused
	for _, f := range frames {
		_ = b.eng.Step(n.now, routing.FrameReceived{Link: l.id, Frame: f})
	}
	n.process(b)
	if got := b.eng.Counters().SessionFramesRefused - refused; got != 5 {
		t.Fatalf("%d of 5 replayed frames refused", got)
	}
	n.run(30 * time.Minute) // a's retries; b acknowledges again
	n.send("a", "b", "six")
	n.run(10 * time.Minute)
	checkInbox(t, b, []string{"warm up", "m0", "m1", "m2", "m3", "m4", "six"})
	if left := a.eng.Outbox(); len(left) != 0 {
		t.Fatalf("still in custody: %+v", left)
	}
}

// carry makes nd's Ready durable in its store and returns the frames it
// transmits, without sending them; deliveries go to its inbox.
func carry(nd *tnode) [][]byte {
	var out [][]byte
	for nd.eng.HasReady() {
		rd := nd.eng.Ready()
		for _, r := range rd.Persist {
			nd.store[r.Key] = append([]byte(nil), r.Value...)
		}
		for _, k := range rd.Deletes {
			delete(nd.store, k)
		}
		for _, tx := range rd.Transmits {
			out = append(out, tx.Frame)
		}
		nd.inbox = append(nd.inbox, rd.Deliveries...)
		nd.eng.Advance()
	}
	return out
}

// Attack on a responder restored from an older backup: its sending chain
// lags, and under key schedule 3 (ChaCha20-Poly1305, zero nonce) sealing
// under a message key used before is not only a two-time pad: the two
// frames give away that key's Poly1305 key, so whoever saw both (a relay
// on the path) can forge an acknowledgement under that counter, which the
// initiator accepts if it never got the first one (the relay dropped it),
// and which clears messages never delivered. A restored responder must
// never seal a frame under a counter its chain may have used.
func TestAttackSessionResponderBackupKeyReuse(t *testing.T) {
	n := newTestNet(t, 37)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	a, b := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Minute)
	n.send("a", "b", "one")
	n.run(time.Minute)
	sent := map[[9]byte][]byte{}
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		f := tx.Frame
		if from != b || len(f) < protocol.SessionFrameOverhead || f[0] != byte(protocol.KindSessionData) {
			return false
		}
		var k [9]byte
		copy(k[:4], f[1:5])
		k[4] = f[5] & 0x20
		copy(k[5:], f[6:10])
		if old, ok := sent[k]; ok && !bytes.Equal(old, f) {
			t.Errorf("b sealed two frames under counter %d of label %x", binary.BigEndian.Uint32(f[6:10]), f[1:5])
		}
		sent[k] = append([]byte(nil), f...)
		return false
	}
	backup := map[string][]byte{}
	for k, v := range b.store {
		backup[k] = append([]byte(nil), v...)
	}
	n.send("a", "b", "two")
	n.run(time.Minute)
	n.send("a", "b", "three")
	n.run(time.Minute)
	n.stop(b)
	b.store = backup
	n.start(b)
	n.run(time.Minute)
	n.send("a", "b", "four")
	n.run(time.Hour)
	checkInbox(t, b, []string{"one", "two", "three", "four"})
	if left := a.eng.Outbox(); len(left) != 0 {
		t.Fatalf("still in custody: %+v", left)
	}
	if c := a.eng.Counters(); c.SessionResetsIn != 1 || c.SessionsEstablished != 2 {
		t.Fatalf("a: %d resets in, %d sessions (want 1, 2)", c.SessionResetsIn, c.SessionsEstablished)
	}
}
