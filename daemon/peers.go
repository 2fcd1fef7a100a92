package daemon

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/transports/p2p"
)

// knownPeers reads the peers remembered from earlier runs, for the host
// to redial from the start, with when each was last seen. Entries
// unreachable for p2p.DefaultForgetAfter are first forgotten on disk,
// except bootstrap peers (configured by the operator); entries that no
// longer parse are skipped.
func knownPeers(st *store.Store, log *slog.Logger, now time.Time, bootstrap []string) ([]peer.AddrInfo, map[peer.ID]time.Time) {
	if n, err := st.ForgetKnownPeers(now.Add(-p2p.DefaultForgetAfter), bootstrapIDs(bootstrap)...); err != nil {
		log.Warn("could not forget long-unreachable peers", "err", err)
	} else if n > 0 {
		log.Info("forgot peers unreachable too long", "count", n, "after", p2p.DefaultForgetAfter)
	}
	kps, err := st.KnownPeers()
	if err != nil {
		log.Warn("could not read the known peers; starting without them", "err", err)
		return nil, nil
	}
	out := make([]peer.AddrInfo, 0, len(kps))
	seen := make(map[peer.ID]time.Time, len(kps))
	for _, kp := range kps {
		id, err := peer.Decode(kp.ID)
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range kp.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		if len(ai.Addrs) > 0 {
			out = append(out, ai)
			seen[id] = kp.Seen
		}
	}
	return out, seen
}

// bootstrapIDs are the peer IDs of the bootstrap multiaddrs that parse.
func bootstrapIDs(bootstrap []string) []string {
	var out []string
	for _, s := range bootstrap {
		if ai, err := peer.AddrInfoFromString(s); err == nil {
			out = append(out, ai.ID.String())
		}
	}
	return out
}

// peerGone notes that p's link went down at now: the remembered entry's
// last-seen time moves there, so that a link that lasted longer than
// p2p.DefaultForgetAfter is not forgotten at the next start.
func (n *Node) peerGone(p peer.ID, now time.Time) {
	if err := n.st.TouchKnownPeers(now, p.String()); err != nil {
		n.log.Warn("could not update a remembered peer", "peer", p, "err", err)
	}
}

// rememberPeer stores a peer a link came up with and its addresses, so
// that the next run dials it again. Loop only (it reads n.links: peers
// with a link up are not forgotten to make room).
func (n *Node) rememberPeer(ev p2p.LinkUp, now time.Time) {
	kp := store.KnownPeer{ID: ev.Peer.String(), Seen: now}
	for _, a := range ev.Addrs {
		kp.Addrs = append(kp.Addrs, a.String())
	}
	if len(kp.Addrs) == 0 {
		return
	}
	keep := make([]string, 0, len(n.links))
	for p := range n.links {
		keep = append(keep, p.String())
	}
	if err := n.st.PutKnownPeers([]store.KnownPeer{kp}, keep...); err != nil {
		n.log.Warn("could not remember a peer", "peer", ev.Peer, "err", err)
	}
}

// agentVersion is what identify reports as the agent: "meshd/<version>".
// One function, so that a single version source can replace Version here.
func agentVersion() string { return "meshd/" + Version }
