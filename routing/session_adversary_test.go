package routing_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// TestSessionHostilePath: the path between a and b loses, delays,
// reorders and replays frames in both directions (as a relay could), in
// bursts of up to 300 messages, across key phases (the clock jumps past
// protocol.SessionRekeyAge). Whatever it does, a never clears a message b
// has not delivered (checked when a reports it delivered), b delivers each
// message at most once, and once the path behaves every message is
// delivered and cleared.
func TestSessionHostilePath(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { hostilePath(t, seed) })
	}
}

type heldFrame struct {
	to *tnode
	tx routing.Transmit
}

func hostilePath(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	n := newTestNet(t, seed)
	n.cfg = func(c *routing.Config) { c.NoSessions = false; c.SessionIdle = 72 * time.Hour }
	na, nb := n.addNode("a"), n.addNode("b")
	n.addLink(routing.LinkIP, 0, 0, "a", "b")
	n.run(time.Minute)
	var pool []heldFrame
	n.drop = func(from *tnode, _ *tlink, tx routing.Transmit) bool {
		to := nb
		if from == nb {
			to = na
		}
		pool = append(pool, heldFrame{to, routing.Transmit{Link: tx.Link, Frame: append([]byte(nil), tx.Frame...)}})
		return true
	}
	delivered := map[string]int{}
	seenIn, seenEv := 0, 0
	check := func() {
		for ; seenIn < len(nb.inbox); seenIn++ {
			body := string(nb.inbox[seenIn].Body)
			if delivered[body]++; delivered[body] > 1 {
				t.Errorf("%q delivered twice", body)
			}
		}
		for ; seenEv < len(na.events); seenEv++ {
			ev := na.events[seenEv]
			if ev.Kind == routing.EventDelivered && delivered[fmt.Sprint(ev.Ref)] == 0 {
				t.Errorf("a cleared message %d, which b has not delivered", ev.Ref)
			}
		}
	}
	ref := 0
	for round := 0; round < 40; round++ {
		if rng.IntN(8) == 0 {
			hostile := n.drop // a good path meanwhile, the session kept
			n.drop = nil
			for range 25 {
				n.run(time.Hour) // a key phase used up by age
				ref++
				n.step(na, routing.SendRequest{Ref: uint64(ref), Dest: nb.id.Address(), Body: []byte(fmt.Sprint(ref))})
			}
			n.drop = hostile
		}
		for range rng.IntN(4) * rng.IntN(100) {
			ref++
			n.step(na, routing.SendRequest{Ref: uint64(ref), Dest: nb.id.Address(), Body: []byte(fmt.Sprint(ref))})
		}
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		batch := pool
		pool = nil
		for _, h := range batch {
			switch r := rng.IntN(10); {
			case r < 1: // lost
			case r < 2: // later
				pool = append(pool, h)
			default:
				copies := 1
				if r == 9 {
					copies = 2 // replayed
				}
				for range copies {
					if rng.IntN(3) == 0 {
						n.step(h.to, routing.FrameReceived{Link: h.tx.Link, Frame: h.tx.Frame})
					} else { // several frames in one batch
						_ = h.to.eng.Step(n.now, routing.FrameReceived{Link: h.tx.Link, Frame: h.tx.Frame})
					}
				}
			}
		}
		n.process(na)
		n.process(nb)
		check()
		n.run(time.Duration(rng.IntN(30)) * time.Second)
		check()
	}
	for _, h := range pool { // what the path still held, then a good path
		n.step(h.to, routing.FrameReceived{Link: h.tx.Link, Frame: h.tx.Frame})
	}
	n.drop = nil
	n.run(6 * time.Hour)
	check()
	if len(delivered) != ref {
		t.Errorf("%d of %d delivered", len(delivered), ref)
	}
	if left := len(na.eng.Outbox()); left != 0 {
		t.Errorf("%d left in custody", left)
	}
	c := na.eng.Counters()
	t.Logf("%d messages; a: SessionsDropped=%d SessionInitsOut=%d SessionRekeys=%d SessionFallbacks=%d", ref, c.SessionsDropped, c.SessionInitsOut, c.SessionRekeys, c.SessionFallbacks)
}
