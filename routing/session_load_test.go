package routing_test

import (
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestSessionRekeysUnderLoad: a session that always has messages waiting
// for their acknowledgement (a sender that keeps its window full, as the
// daemon's node loop does under load) still rekeys every
// protocol.SessionRekeyFrames frames, inside the session, and keeps every
// message in it. The initiator asks for a rekey only when no frame waits
// for an acknowledgement, so before the fix a busy session never asked;
// past twice the bound it was replaced by a new handshake, and the
// daemon's benchmark collapsed there from 30,000 messages a second to a
// few hundred, every message a sealed envelope.
func TestSessionRekeysUnderLoad(t *testing.T) {
	const batch = 64
	total := 2*protocol.SessionRekeyFrames + 8*batch
	n, na, nb, _ := sessionPair(t, false, nil)
	dest := nb.id.Address()
	now := n.now
	delivered, events := 0, 0
	// ready carries out from's Ready: frames returned, deliveries counted.
	ready := func(from *tnode) []routing.Transmit {
		var frames []routing.Transmit
		for from.eng.HasReady() {
			rd := from.eng.Ready()
			delivered += len(rd.Deliveries)
			for _, ev := range rd.Events {
				if ev.Kind == routing.EventDelivered {
					events++
				}
			}
			frames = append(frames, rd.Transmits...)
			from.eng.Advance()
		}
		return frames
	}
	step := func(to *tnode, frames []routing.Transmit) {
		for _, tx := range frames {
			if err := to.eng.Step(now, routing.FrameReceived{Link: tx.Link, Frame: tx.Frame}); err != nil {
				t.Fatal(err)
			}
		}
	}
	body := make([]byte, 64)
	var heldAcks []routing.Transmit
	for i := 0; i < total; i += batch {
		now = now.Add(time.Millisecond)
		for j := range batch {
			if err := na.eng.Step(now, routing.SendRequest{Ref: uint64(i + j + 1), Dest: dest, Body: body}); err != nil {
				t.Fatalf("message %d: %v (%+v)", i+j, err, na.eng.Counters())
			}
		}
		// The acknowledgements of the previous batch arrive only after
		// this one left: a frame always waits for one.
		step(na, heldAcks)
		step(nb, ready(na))
		heldAcks = ready(nb)
		if i%(16*batch) == 0 {
			na.eng.Tick(now)
			nb.eng.Tick(now)
		}
	}
	for range 20 { // drain: retries after their backoff
		now = now.Add(15 * time.Second)
		step(na, heldAcks)
		na.eng.Tick(now)
		nb.eng.Tick(now)
		step(nb, ready(na))
		heldAcks = ready(nb)
	}
	c := na.eng.Counters()
	if delivered != total || events != total {
		t.Errorf("%d of %d delivered, %d delivered events", delivered, total, events)
	}
	if left := len(na.eng.Outbox()); left != 0 {
		t.Errorf("%d messages left in custody", left)
	}
	if c.SessionInitsOut != 1 || c.SessionFallbacks != 0 || c.SessionsDropped != 0 {
		t.Errorf("session replaced or messages sealed: SessionInitsOut=%d SessionFallbacks=%d SessionsDropped=%d, want 1, 0, 0",
			c.SessionInitsOut, c.SessionFallbacks, c.SessionsDropped)
	}
	if c.SessionRekeys < 2 {
		t.Errorf("SessionRekeys=%d after %d frames, want at least 2", c.SessionRekeys, total)
	}
}

// TestSessionBurstAcknowledged: a burst of more frames than one
// acknowledgement can name (it covers the highest counter and the 64
// below it) reaches the recipient in one batch, as happens when a backlog
// goes out the moment a session is established or a rekey answered. Every
// message is acknowledged and cleared over the same session. Before the
// fix the recipient answered with one acknowledgement of the last 65, the
// older frames could never be acknowledged (their retries are replays,
// answered with the same cumulative acknowledgement), and the session was
// dropped after sessionFailLimit retries and replaced by a new handshake.
func TestSessionBurstAcknowledged(t *testing.T) {
	n, na, nb, _ := sessionPair(t, true, nil)
	var toB []routing.Transmit
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		if from == na {
			toB = append(toB, tx)
			return true
		}
		return false
	}
	const burst = 300
	for i := range burst {
		n.send("a", "b", fmt.Sprintf("burst %d", i))
	}
	n.drop = nil
	for _, tx := range toB { // one batch: one Ready of b
		if err := nb.eng.Step(n.now, routing.FrameReceived{Link: tx.Link, Frame: tx.Frame}); err != nil {
			t.Fatal(err)
		}
	}
	before := na.eng.Counters()
	n.process(nb)
	n.run(time.Millisecond)
	if cleared := na.eng.Counters().CustodyCleared - before.CustodyCleared; cleared != burst {
		t.Errorf("b's acknowledgements of the burst cleared %d of %d messages at once", cleared, burst)
	}
	n.run(10 * time.Minute)
	checkSessionKept(t, na, nb, burst+1)
}
