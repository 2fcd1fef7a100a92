package daemon

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// TestGuardLastPeerKey: the guard keeps the last libp2p peer's key so
// that a frame builds none. With the frames of two peers interleaved
// (the honest one first, so that its key is the one kept when the
// flooder's first frame comes) every strike must go to the flooder's own
// state: the flooder is cut off after its strikes, the honest peer (whose
// ID differs only in its last byte) is never refused nor cooled down.
func TestGuardLastPeerKey(t *testing.T) {
	clk := newFakeClock()
	l := guardLimits()
	g := testGuard(l, clk)
	good, bad := peer.ID("peer-0"), peer.ID("peer-1")
	ok := []byte{byte(protocol.KindPathRequest), 0}
	var err error
	sent := 0
	for ; err == nil || errors.Is(err, errDropped); sent++ {
		if sent > 100_000 {
			t.Fatalf("%d junk frames, no disconnect: %v", sent, err)
		}
		if gerr := g.Frame(good, protocol.Address{2}, ok); gerr != nil {
			t.Fatalf("honest frame %d refused: %v", sent, gerr)
		}
		err = g.Frame(bad, protocol.Address{1}, junkFrame(2))
	}
	if !errors.Is(err, ErrOffender) || sent > l.PeerStrikes+1 {
		t.Fatalf("flooder after %d junk frames: %v; want ErrOffender within %d", sent, err, l.PeerStrikes+1)
	}
	if !g.AllowPeer(good) || g.AllowPeer(bad) {
		t.Fatalf("after the flood: honest peer allowed %v, flooder allowed %v", g.AllowPeer(good), g.AllowPeer(bad))
	}
	if err := g.Frame(good, protocol.Address{2}, ok); err != nil {
		t.Fatalf("honest peer's frame after the flood: %v", err)
	}
}
