package sim

import (
	"strconv"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// The gossipsub model. The daemon publishes the channel frames of
// Ready.Publish on the channel's gossipsub topic and hands what gossip
// delivers to the engine as GossipReceived; here, the IP links (kind "ip",
// libp2p connections) carry the topic's messages:
//
//   - The members of the channel subscribe to its topic. Every member keeps
//     a mesh: up to D (gossip.mesh_degree) member neighbours, symmetric (a
//     graft is refused by a node that has Dhi, gossip.mesh_degree_high).
//     Meshes are drawn again, from the seed, whenever a link or a node goes
//     down or up (gossipsub's heartbeat repairs them within a second; the
//     model repairs them at once).
//   - A publisher sends to every member neighbour (flood publishing, on by
//     default as in go-libp2p-pubsub, for members and non-members alike: a
//     relay publishing what it heard on the radio on a topic it has not
//     joined). With flood publishing off, a member sends to its mesh and a
//     non-member to up to D member neighbours (gossipsub's fanout).
//   - A member that receives a message it has not seen (gossipsub's seen
//     cache, keyed by the message ID) hands it to its engine and forwards it
//     to its mesh peers but the sender. The message ID is the channel
//     frame's dedup key (channel, message ID, time), so copies of one frame
//     published by two bridges are one gossip message.
//   - Each hop takes the link's latency plus its jitter plus gossip.hop_delay.
//     Libp2p streams are reliable, so link loss and bandwidth are not
//     applied. IHAVE/IWANT gossip (the lazy repair of messages a mesh
//     missed) is not modelled: a member that no mesh path reaches misses the
//     message, so the measured delivery ratio is a floor.

// gossip publishes a channel frame from n's engine on the channel's topic.
func (s *Sim) gossip(n *node, p routing.Publish) {
	if len(n.links) == 0 {
		return // no IP side: the daemon's gossip has no peers
	}
	id, ok := gossipID(p.Frame)
	if !ok {
		s.errs++
		return
	}
	s.ensureMesh()
	if n.gseen == nil {
		n.gseen = map[[protocol.ChannelDedupKeySize]byte]struct{}{}
	}
	if _, seen := n.gseen[id]; seen {
		return // gossipsub refuses to publish a message it has seen
	}
	n.gseen[id] = struct{}{}
	var to []*node
	switch {
	case s.sc.Gossip.FloodPublish == "on":
		// go-libp2p-pubsub floods a node's own publication to every peer
		// on the topic, joined or not.
		to = s.memberNeighbours(n)
	case !n.member:
		to = s.memberNeighbours(n) // fanout: D of them
		s.gossipRng.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
		to = to[:min(len(to), s.sc.Gossip.MeshDegree)]
	default:
		to = n.mesh
	}
	for _, o := range to {
		s.gossipHop(n, o, p.Frame)
	}
}

// gossipID is a channel frame's gossip message ID: its dedup key.
func gossipID(frame []byte) ([protocol.ChannelDedupKeySize]byte, bool) {
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return [protocol.ChannelDedupKeySize]byte{}, false
	}
	return f.DedupKey(), true
}

// gossipHop sends a gossip message from n to its neighbour o over the
// first usable IP link between them.
func (s *Sim) gossipHop(n, o *node, frame []byte) {
	var l *ipLink
	for _, c := range n.links {
		if c.other(n) == o && c.usable() && c.kind() == routing.LinkIP {
			l = c
			break
		}
	}
	if l == nil {
		return
	}
	d := l.p.Latency.Duration + s.sc.Gossip.HopDelay.Duration
	if l.p.Jitter.Duration > 0 {
		d += time.Duration(s.gossipRng.Int64N(int64(l.p.Jitter.Duration)))
	}
	s.count("gossip", len(frame))
	s.push(&event{at: s.now.Add(d), kind: evGossip, node: o, from: n, in: routing.GossipReceived{Frame: append([]byte(nil), frame...)}})
}

// gossipReceived is a gossip message reaching n from its neighbour from.
func (s *Sim) gossipReceived(n, from *node, frame []byte) {
	if !n.member {
		return // unsubscribed meanwhile
	}
	n.stats.GossipReceived++
	id, ok := gossipID(frame)
	if !ok {
		s.errs++
		return
	}
	if n.gseen == nil {
		n.gseen = map[[protocol.ChannelDedupKeySize]byte]struct{}{}
	}
	if _, seen := n.gseen[id]; seen {
		n.stats.GossipDuplicates++
		s.trace.rec(s.now, "gossip", n.idx, 0, "dup from "+strconv.Itoa(from.idx))
		return
	}
	n.gseen[id] = struct{}{}
	s.trace.rec(s.now, "gossip", n.idx, 0, "from "+strconv.Itoa(from.idx))
	s.ensureMesh()
	s.step(n, routing.GossipReceived{Frame: frame})
	for _, o := range n.mesh {
		if o != from {
			s.gossipHop(n, o, frame)
		}
	}
}

// memberNeighbours are n's up neighbours over usable IP links that are
// members, each once, in link order.
func (s *Sim) memberNeighbours(n *node) []*node {
	var out []*node
	for _, l := range n.links {
		o := l.other(n)
		if l.usable() && l.kind() == routing.LinkIP && o.member && !containsNode(out, o) {
			out = append(out, o)
		}
	}
	return out
}

func containsNode(ns []*node, n *node) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

// ensureMesh draws every member's gossipsub mesh again if links or nodes
// changed: each up member in index order grafts member neighbours in a
// random order until it has D, skipping those that already have Dhi.
func (s *Sim) ensureMesh() {
	if !s.meshDirty {
		return
	}
	s.meshDirty = false
	g := s.sc.Gossip
	for _, n := range s.nodes {
		n.mesh = n.mesh[:0]
	}
	for _, n := range s.nodes {
		if !n.member || !n.up {
			continue
		}
		cand := s.memberNeighbours(n)
		s.gossipRng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
		for _, o := range cand {
			if len(n.mesh) >= g.MeshDegree {
				break
			}
			if len(o.mesh) < g.MeshDegreeHigh && !containsNode(n.mesh, o) {
				n.mesh = append(n.mesh, o)
				o.mesh = append(o.mesh, n)
			}
		}
	}
}

// broadcastDelivered records the delivery of broadcast number i to n's
// application: its latency and reach the first time, a duplicate after (the
// sender counts as having it from the start).
func (s *Sim) broadcastDelivered(n *node, i uint64) {
	if n.bseen == nil {
		n.bseen = map[uint64]struct{}{}
	}
	if _, dup := n.bseen[i]; dup {
		n.stats.BroadcastDuplicates++
		return
	}
	n.bseen[i] = struct{}{}
	n.stats.BroadcastsDelivered++
	lat := s.now.Sub(s.bcastAt[i-1]).Seconds()
	s.bcastLat = append(s.bcastLat, lat)
	if s.bcastLatBy == nil {
		s.bcastLatBy = map[string][]float64{}
	}
	path := s.bcastFrom[i-1].side() + "_to_" + n.side()
	s.bcastLatBy[path] = append(s.bcastLatBy[path], lat)
	if n.member {
		s.bcastReach[i-1]++
		s.bcastLast[i-1] = s.now
	}
}
