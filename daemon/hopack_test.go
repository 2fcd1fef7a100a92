package daemon

import (
	"testing"

	"meshd.dev/meshd/transports/p2p"
)

// A libp2p link asks the engine for hop acks only when the peer
// acknowledges (an older meshd does not; see
// p2p.TestLinkUpHopAcksOnlyWithPeersThatAck).
func TestP2PInfoHopAcksFollowPeer(t *testing.T) {
	if p2pInfo(p2p.LinkUp{HopAcks: false}).HopAcks {
		t.Error("hop acks on with a peer that does not acknowledge")
	}
	if !p2pInfo(p2p.LinkUp{HopAcks: true}).HopAcks {
		t.Error("hop acks off with a peer that acknowledges")
	}
}
