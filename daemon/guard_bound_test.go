package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestGuardCoolingBounded: peer IDs cost nothing to mint, so an attacker
// can get any number of them cooled down (ten bad hellos each). The
// cool-down list must stay bounded, or it grows for cool_down (10 min) at
// the attacker's pace, and every new limiter scans it under the lock all
// links' frames take.
func TestGuardCoolingBounded(t *testing.T) {
	clk := newFakeClock()
	g := testGuard(guardLimits(), clk)
	bad := errors.New("bad hello")
	n := maxCooling + 500
	for i := range n {
		p := peer.ID(fmt.Sprintf("minted-%d", i))
		for range maxHandshakeFailures + 1 {
			g.HandshakeFailed(p, bad)
		}
		if i == 0 && g.AllowPeer(p) {
			t.Fatal("a peer failing eleven handshakes in a row is not cooled down")
		}
	}
	if len(g.cooling) > maxCooling || len(g.coolOrder) > maxCooling {
		t.Fatalf("%d peers cooled down: %d in the list, %d queued (bound %d)", n, len(g.cooling), len(g.coolOrder), maxCooling)
	}
	if g.AllowPeer(peer.ID(fmt.Sprintf("minted-%d", n-1))) {
		t.Error("the latest offender is not cooling down")
	}
}
