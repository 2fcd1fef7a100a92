package daemon

import (
	mrand "math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestForgedStrikesNotFramed: an attacker two hops away signs envelopes
// for the victim with its own key, well-formed and correctly signed, so
// an honest neighbour verifies and forwards them, but with contents only
// the destination checks (an unknown control payload, an echo request that
// is not sealed). The victim's engine refuses them; the refusal is not the
// neighbour's doing and must not be a strike against it (or the attacker
// gets the honest neighbour cut off and the mesh split).
func TestForgedStrikesNotFramed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	rnd := mrand.NewChaCha8([32]byte{16})
	victim, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	attacker, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	neighbour, err := protocol.NewIdentity(rnd)
	if err != nil {
		t.Fatal(err)
	}
	e, err := routing.New(routing.Config{Identity: victim, Rand: rnd}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: neighbour.Address()}}); err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	l := guardLimits()
	g := testGuard(l, clk)
	for _, typ := range []protocol.Type{protocol.TypeControl, protocol.TypeEcho} {
		for i := range l.PeerStrikes + 1 {
			id, err := protocol.NewMessageID(rnd)
			if err != nil {
				t.Fatal(err)
			}
			h := protocol.Header{Type: typ, HopLimit: 8, ID: id, Created: protocol.TimestampOf(now),
				Expires: protocol.TimestampOf(now.Add(time.Hour)), Dest: victim.Address()}
			env, err := protocol.SignEnvelope(attacker, h, []byte{0xee, byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := env.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			err = e.Step(now, routing.FrameReceived{Link: 1, Frame: raw})
			if err == nil {
				t.Fatalf("%v envelope %d accepted", typ, i)
			}
			if forged(err) && g.strike(p2pKey("honest"), addrKey(neighbour.Address())) {
				t.Fatalf("honest neighbour cooled down after %d relayed %v envelopes (%v)", i+1, typ, err)
			}
			for e.HasReady() {
				e.Ready()
			}
		}
	}
}
