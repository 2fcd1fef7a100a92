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

// Attack: a remembered peer stayed on disk and was redialled after every
// restart forever, however long it had been unreachable (with addresses a
// peer once claimed, a permanent dialling helper). Entries unreachable
// for p2p.DefaultForgetAfter are forgotten at start, on disk too, except
// bootstrap peers; a peer whose link was up until it went down is counted
// from its last link down, not its link up.
func TestKnownPeersForgetsUnreachable(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	stale, boot, long := testPeer(t, 1), testPeer(t, 2), testPeer(t, 3)
	n := &Node{st: st, log: log, links: map[peer.ID]*link{}}
	addr := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/7721")}
	t0 := time.Unix(1_800_000_000, 0)
	for _, p := range []peer.ID{stale, boot, long} {
		n.rememberPeer(p2p.LinkUp{Peer: p, Addrs: addr}, t0)
	}
	// long's link lasted two days, then went down.
	n.peerGone(long, t0.Add(48*time.Hour))
	now := t0.Add(48*time.Hour + time.Minute)
	bootstrap := []string{"/ip4/127.0.0.1/tcp/7721/p2p/" + boot.String()}
	got, seen := knownPeers(st, log, now, bootstrap)
	ids := map[peer.ID]bool{}
	for _, ai := range got {
		ids[ai.ID] = true
	}
	if ids[stale] || !ids[boot] || !ids[long] {
		t.Fatalf("known peers %v: want the bootstrap peer and the one linked until a minute ago", ids)
	}
	if !seen[long].Equal(t0.Add(48 * time.Hour)) {
		t.Errorf("last seen %v, want the link-down time", seen[long])
	}
	kps, err := st.KnownPeers()
	if err != nil {
		t.Fatal(err)
	}
	for _, kp := range kps {
		if kp.ID == stale.String() {
			t.Error("the peer unreachable for two days is still on disk")
		}
	}
}
