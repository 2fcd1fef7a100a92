package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// Mixed versions: a meshd from before hop acks on libp2p links speaks the
// same link protocol but never acknowledges envelopes. A newer node that
// expected acks from it retransmitted every envelope it forwarded there,
// then dropped the route and took custody: each message through an older
// neighbour cost several copies and a route flap. Hop acks are on only
// when the peer advertises them (HopAckProtocol in identify).
func TestLinkUpHopAcksOnlyWithPeersThatAck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newTestHost(t, 61, nil)
	b := newTestHost(t, 62, nil)
	ua, ub := connectPair(t, ctx, a, b)
	if !ua.HopAcks || !ub.HopAcks {
		t.Errorf("two current nodes: HopAcks %v, %v, want true on both", ua.HopAcks, ub.HopAcks)
	}
	old := newTestHost(t, 63, func(c *Config) { c.noHopAcks = true })
	c := newTestHost(t, 64, nil)
	uc, uo := connectPair(t, ctx, c, old)
	if uc.HopAcks || uo.HopAcks {
		t.Errorf("with a node that does not acknowledge: HopAcks %v, %v, want false on both", uc.HopAcks, uo.HopAcks)
	}
}

// TestHopAckMarkerInFirstIdentify: a peer that identifies a host the
// moment it is up learns that the host speaks the link protocol and
// acknowledges hops. Both were registered after libp2p started the host;
// libp2p's identify service subscribes to protocol changes only in a
// goroutine of its own after taking its first snapshot, so a registration
// before that goroutine ran was lost until some other change (a loaded
// machine: TestLinkUpHopAcksOnlyWithPeersThatAck failed so in CI). Now
// both are in the first snapshot. The race cannot be forced from
// outside; the test identifies ten fresh hosts at once.
func TestHopAckMarkerInFirstIdentify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 10 {
		h := newTestHost(t, uint64(70+i), nil)
		raw := rawHost(t, testIdentity(t, uint64(90+i)))
		if err := raw.Connect(ctx, peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
		conns := raw.Network().ConnsToPeer(h.host.ID())
		if len(conns) == 0 {
			t.Fatal("no connection")
		}
		ids := raw.(interface{ IDService() identify.IDService }).IDService()
		<-ids.IdentifyWait(conns[0])
		for _, p := range []protocol.ID{LinkProtocol, HopAckProtocol} {
			ok, err := raw.Peerstore().SupportsProtocols(h.host.ID(), p)
			if err != nil || len(ok) == 0 {
				t.Fatalf("host %d: its first identify answer does not list %s (%v)", i, p, err)
			}
		}
	}
}
