package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// BenchmarkSessionBatch is the engines' part of BenchmarkDirectMessages in
// the daemon: node a takes 64 messages, then hands its Ready to b (one
// batch of frames), b's Ready (deliveries and one cumulative
// acknowledgement) goes back to a, which clears its custody. An op is one
// message; both engines' work counts, the test network's does not (the
// engines are driven directly, as the daemon's node loop does).
func BenchmarkSessionBatch(b *testing.B) {
	const batch = 64
	n := newTestNet(b, 1)
	n.cfg = func(c *routing.Config) { c.NoSessions = false }
	na, nb := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 0, 0, "a", "b")
	n.run(time.Minute)
	n.send("a", "b", "warm up")
	n.run(time.Minute)
	if len(nb.inbox) != 1 {
		b.Fatalf("warm up: %d delivered", len(nb.inbox))
	}
	body := make([]byte, 256)
	dest := nb.id.Address()
	now := n.now
	var delivered, records int
	// pass steps the frames of from's Ready into to and counts what it
	// persisted and delivered.
	pass := func(from, to *tnode) {
		var frames []routing.Transmit
		for from.eng.HasReady() {
			rd := from.eng.Ready()
			records += len(rd.Persist) + len(rd.Deletes)
			delivered += len(rd.Deliveries)
			frames = append(frames, rd.Transmits...)
			from.eng.Advance()
		}
		for _, tx := range frames {
			if err := to.eng.Step(now, routing.FrameReceived{Link: tx.Link, Frame: tx.Frame}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for j := range min(batch, b.N-i) {
			if err := na.eng.Step(now, routing.SendRequest{Ref: uint64(i + j + 1), Dest: dest, Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		pass(na, nb)
		pass(nb, na)
		pass(na, nb) // a's custody deletes
	}
	b.StopTimer()
	// A rekey (every protocol.SessionRekeyFrames frames) holds messages
	// back until its answer, and their retries wait for their backoff: a
	// few more rounds, with time moving on, let them go.
	for range 8 {
		now = now.Add(time.Minute)
		na.eng.Tick(now)
		nb.eng.Tick(now)
		pass(na, nb)
		pass(nb, na)
	}
	if delivered != b.N {
		b.Fatalf("%d of %d delivered", delivered, b.N)
	}
	if left := len(na.eng.Outbox()); left != 0 {
		b.Fatalf("%d messages left in custody (N %d): %+v", left, b.N, na.eng.Counters())
	}
	b.ReportMetric(float64(records)/float64(b.N), "records/msg")
}
