package p2p

import (
	"context"
	"testing"
	"time"
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
