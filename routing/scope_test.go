package routing_test

import (
	"testing"

	"meshd.dev/meshd/routing"
)

// TestFloodScopedChannel: a frame of a scoped channel crosses mesh links
// only through members. A non-member drops it (counted) instead of
// relaying it; a member relays and delivers it; a channel not scoped is
// relayed by everyone, as before; and scoping can be lifted again.
func TestFloodScopedChannel(t *testing.T) {
	key := floodChannel(t)
	a := newFloodNode(t, "a", nil)
	frame := a.broadcast(key, "a region's announce", 3)

	outsider := newFloodNode(t, "outsider", nil)
	outsider.step(routing.ScopeChannel{Channel: key.ID(), Scoped: true})
	outsider.receive(epoch, frame)
	if len(outsider.out) != 0 {
		t.Fatalf("a non-member relayed a scoped channel's frame (%d frames)", len(outsider.out))
	}
	if c := outsider.eng.Counters(); c.FloodOutOfScope != 1 || c.FloodRelayed != 0 {
		t.Fatalf("FloodOutOfScope %d, FloodRelayed %d; want 1, 0", c.FloodOutOfScope, c.FloodRelayed)
	}

	member := newFloodNode(t, "member", nil)
	member.step(routing.ScopeChannel{Channel: key.ID(), Scoped: true})
	member.step(routing.JoinChannel{Key: key})
	member.receive(epoch, frame)
	if len(member.got) != 1 || len(member.out) != 1 {
		t.Fatalf("a member of a scoped channel delivered %d and relayed %d frames, want 1 and 1", len(member.got), len(member.out))
	}

	plain := newFloodNode(t, "plain", nil)
	plain.receive(epoch, frame)
	if len(plain.out) != 1 {
		t.Fatalf("a non-member relayed %d frames of an unscoped channel, want 1", len(plain.out))
	}

	lifted := newFloodNode(t, "lifted", nil)
	lifted.step(routing.ScopeChannel{Channel: key.ID(), Scoped: true})
	lifted.step(routing.ScopeChannel{Channel: key.ID(), Scoped: false})
	lifted.receive(epoch, frame)
	if len(lifted.out) != 1 {
		t.Fatalf("a channel no longer scoped was relayed %d times, want 1", len(lifted.out))
	}
}
