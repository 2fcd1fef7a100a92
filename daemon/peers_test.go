package daemon

import (
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/transports/p2p"
)

// testPeer is a peer ID made from an Ed25519 key of seed.
func testPeer(t *testing.T, seed byte) peer.ID {
	t.Helper()
	id, err := peer.IDFromBytes(append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, make32(seed)...))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func make32(seed byte) []byte {
	b := make([]byte, 32)
	b[0], b[31] = seed, seed
	return b
}

// Attack: the remembered peers were trimmed to store.MaxKnownPeers by
// link-up time alone, so a peer that linked up MaxKnownPeers fresh
// identities pushed a neighbour whose link had been up all along off the
// disk: after the next restart the node no longer redialled it. A peer
// with a link up is kept.
func TestRememberPeerKeepsLinkedPeers(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := testPeer(t, 1)
	n := &Node{st: st, log: slog.New(slog.DiscardHandler), links: map[peer.ID]*link{good: {}}}
	addr := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/7721")}
	now := time.Unix(1_800_000_000, 0)
	n.rememberPeer(p2p.LinkUp{Peer: good, Addrs: addr}, now)
	for i := range store.MaxKnownPeers + 5 {
		now = now.Add(time.Second)
		n.rememberPeer(p2p.LinkUp{Peer: testPeer(t, byte(10+i)), Addrs: addr}, now)
	}
	kps, err := st.KnownPeers()
	if err != nil {
		t.Fatal(err)
	}
	if len(kps) > store.MaxKnownPeers {
		t.Errorf("%d peers remembered, bound %d", len(kps), store.MaxKnownPeers)
	}
	for _, kp := range kps {
		if kp.ID == good.String() {
			return
		}
	}
	t.Error("a peer whose link is up was forgotten for newer ones")
}
