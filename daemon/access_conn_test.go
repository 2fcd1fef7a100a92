package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// TestAccessDeniedByAddressDisconnected: with an allow list of mesh
// addresses (or a deny list entry by address), a peer's address is known
// only from its link hello. A peer that is refused there must lose its
// libp2p connection too and not get it back: kept, it would still speak
// gossipsub (channel frames bridged into the mesh) and the DHT with the
// node the operator closed to it.
func TestAccessDeniedByAddressDisconnected(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	allowed, allowedID := hostilePeer(t, nil)
	_ = allowed
	other, _ := hostilePeer(t, nil)
	cfg := testConfig(t)
	cfg.Access = AccessConfig{Allow: []string{allowedID.Address().String()}}
	v, stop := startNode(t, cfg)
	defer stop()
	if _, err := other.Connect(ctx, v.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return v.guard.stats.refusedDenied.Load() > 0 })
	waitFor(t, ctx, func() bool {
		return v.host.Libp2p().Network().Connectedness(other.ID()) != network.Connected
	})
	if _, err := other.Connect(ctx, v.host.Addrs()[0]); err == nil &&
		v.host.Libp2p().Network().Connectedness(other.ID()) == network.Connected && v.guard.AllowPeer(other.ID()) {
		t.Error("the refused peer connected again")
	}
}
