package routing_test

import (
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// A message to an address nobody has is listed in the outbox; cancelling it
// deletes its record (so a restart cannot bring it back), reports
// EventCancelled, and it is never sent afterwards.
func TestCancelRemovesCustodyDurably(t *testing.T) {
	n := newTestNet(t, 7)
	a := n.addNode("a")
	n.addNode("b")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	n.run(time.Second)
	var nobody routing.Address
	nobody[0] = 0x42
	n.step(a, routing.SendRequest{Ref: 9, Dest: nobody, Body: []byte("mistyped")})
	out := a.eng.Outbox()
	if len(out) != 1 || out[0].Dest != nobody || out[0].Ref != 9 {
		t.Fatalf("outbox: %+v", out)
	}
	id := out[0].ID
	storeHas := func() bool {
		for k := range a.store {
			if len(k) > 2 && k[:2] == "c/" {
				return true
			}
		}
		return false
	}
	if !storeHas() {
		t.Fatal("no custody record persisted")
	}
	k, err := a.eng.Cancel(n.now, id)
	if err != nil || k != 1 {
		t.Fatalf("cancel: %d, %v", k, err)
	}
	n.process(a)
	if storeHas() {
		t.Fatal("custody record still persisted after cancel")
	}
	if len(a.eng.Outbox()) != 0 {
		t.Fatalf("outbox after cancel: %+v", a.eng.Outbox())
	}
	var cancelled bool
	for _, ev := range a.events {
		cancelled = cancelled || (ev.Kind == routing.EventCancelled && ev.ID == id && ev.Ref == 9)
	}
	if !cancelled {
		t.Fatalf("no cancelled event: %+v", a.events)
	}
	if _, err := a.eng.Cancel(n.now, id); !errors.Is(err, routing.ErrUnknownMessage) {
		t.Fatalf("second cancel: %v", err)
	}
	// Restart: nothing comes back.
	n.stop(a)
	n.start(a)
	if len(a.eng.Outbox()) != 0 {
		t.Fatalf("outbox after restart: %+v", a.eng.Outbox())
	}
}

// A node cannot cancel a message it only keeps for another node.
func TestCancelRefusesOthersMessages(t *testing.T) {
	n := newTestNet(t, 8)
	// Envelopes: a relay takes custody of them (session frames it only
	// forwards, so it has nothing of a session message to cancel).
	n.cfg = envelopes
	n.addNode("a")
	b := n.addNode("b")
	c := n.addNode("c")
	n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "a", "b")
	l := n.addLink(routing.LinkIP, 5*time.Millisecond, 0, "b", "c")
	n.run(5 * time.Second)
	n.setLink(l, false)
	n.send("a", "c", "held by b")
	n.run(2 * time.Second)
	var id routing.MessageID
	var found bool
	for _, ev := range n.node("a").events {
		if ev.Kind == routing.EventAccepted && ev.Dest == c.id.Address() {
			id, found = ev.ID, true
		}
	}
	if !found {
		t.Fatal("send not accepted")
	}
	if len(b.eng.Outbox()) != 0 {
		t.Fatalf("b lists a's message as its own: %+v", b.eng.Outbox())
	}
	if _, err := b.eng.Cancel(n.now, id); !errors.Is(err, routing.ErrNotOwn) {
		t.Fatalf("b cancelled a's message: %v", err)
	}
}
