package sim

import (
	"math/rand/v2"
	"slices"
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
//   - Every channel is a topic of its own (type topic: the traffic channel,
//     and with FAPP one per PLZ region), with its own members and meshes.
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
//     applied.
//   - Lazy gossip (gossip.lazy): a member's heartbeat announces the IDs of
//     the messages of its last historyGossip heartbeats (IHAVE) to
//     max(Dlazy, gossipFactor) of its member neighbours outside its mesh;
//     those that have not seen some ask for them (IWANT) and get them from
//     the message cache (historyLength heartbeats). Its draws come from a
//     stream of their own (lazyRng).

// topic is one gossipsub topic: a channel's members and their meshes, by
// node index. The traffic workload's channel is the first topic; FAPP adds
// one per PLZ region.
type topic struct {
	fapp   bool // a FAPP region's topic
	id     protocol.ChannelID
	member []bool
	mesh   [][]*node
}

// addTopic registers the topic of channel id (its members follow).
func (s *Sim) addTopic(id protocol.ChannelID) *topic {
	t := &topic{id: id, member: make([]bool, len(s.nodes)), mesh: make([][]*node, len(s.nodes))}
	s.topics = append(s.topics, t)
	if s.topicByID == nil {
		s.topicByID = map[protocol.ChannelID]*topic{}
	}
	s.topicByID[id] = t
	return t
}

// noTopic stands for a channel nobody follows: no members, no meshes.
var noTopic = &topic{}

// topicOf returns the topic of a channel, noTopic for one nobody follows.
func (s *Sim) topicOf(id protocol.ChannelID) *topic {
	if t := s.topicByID[id]; t != nil {
		return t
	}
	return noTopic
}

// isMember reports whether n subscribes to t.
func (t *topic) isMember(n *node) bool { return n.idx < len(t.member) && t.member[n.idx] }

// meshOf is n's gossipsub mesh in t.
func (t *topic) meshOf(n *node) []*node {
	if n.idx < len(t.mesh) {
		return t.mesh[n.idx]
	}
	return nil
}

// gossip publishes a channel frame from n's engine on the channel's topic.
func (s *Sim) gossip(n *node, p routing.Publish) {
	if len(n.links) == 0 {
		return // no IP side: the daemon's gossip has no peers
	}
	id, ch, ok := gossipID(p.Frame)
	if !ok {
		s.errs++
		return
	}
	t := s.topicOf(ch)
	s.ensureMesh()
	if n.gseen == nil {
		n.gseen = map[gossipKey]struct{}{}
	}
	if _, seen := n.gseen[id]; seen {
		return // gossipsub refuses to publish a message it has seen
	}
	n.gseen[id] = struct{}{}
	s.remember(n, t, id, p.Frame)
	var to []*node
	switch {
	case s.sc.Gossip.FloodPublish == "on":
		// go-libp2p-pubsub floods a node's own publication to every peer
		// on the topic, joined or not.
		to = s.memberNeighbours(t, n)
	case !t.isMember(n):
		to = s.memberNeighbours(t, n) // fanout: D of them
		s.gossipRng.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
		to = to[:min(len(to), s.sc.Gossip.MeshDegree)]
	default:
		to = t.meshOf(n)
	}
	for _, o := range to {
		s.gossipHop(n, o, t, p.Frame, s.gossipRng)
	}
}

// gossipKey is a gossip message ID: a channel frame's dedup key.
type gossipKey = [protocol.ChannelDedupKeySize]byte

// gossipMsg is a message in a node's gossipsub message cache.
type gossipMsg struct {
	t     *topic
	id    gossipKey
	frame []byte
	at    time.Time
}

// go-libp2p-pubsub's defaults: IHAVE announces the messages of the last
// historyGossip heartbeats, IWANT can fetch those of the last
// historyLength, and a node gossips to at least Dlazy or gossipFactor of
// its eligible peers.
const (
	historyGossip = 3
	historyLength = 5
	gossipFactor  = 0.25
)

// gossipID is a channel frame's gossip message ID (its dedup key) and its
// channel (the topic).
func gossipID(frame []byte) (gossipKey, protocol.ChannelID, bool) {
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return gossipKey{}, protocol.ChannelID{}, false
	}
	return f.DedupKey(), f.Channel, true
}

// gossipHop sends a gossip message from n to its neighbour o over the
// first usable IP link between them, its jitter drawn from r (the lazy
// stream for IWANT answers, so IHAVE gossip moves no other draw).
func (s *Sim) gossipHop(n, o *node, t *topic, frame []byte, r *rand.Rand) {
	l := s.ipLinkTo(n, o)
	if l == nil {
		return
	}
	s.count("gossip", len(frame))
	s.fappGossipBytes(t, len(frame))
	s.push(event{at: s.now.Add(s.hopDelay(l, r)), kind: evGossip, node: o, from: n, topic: t, in: routing.GossipReceived{Frame: append([]byte(nil), frame...)}})
}

// ipLinkTo returns the first usable IP link from n to o, or nil.
func (s *Sim) ipLinkTo(n, o *node) *ipLink {
	for _, c := range n.links {
		if c.other(n) == o && c.usable() && c.kind() == routing.LinkIP {
			return c
		}
	}
	return nil
}

// hopDelay draws a gossip hop's delay on l (latency, jitter from r, hop
// delay).
func (s *Sim) hopDelay(l *ipLink, r *rand.Rand) time.Duration {
	d := l.p.Latency.Duration + s.sc.Gossip.HopDelay.Duration
	if l.p.Jitter.Duration > 0 {
		d += time.Duration(r.Int64N(int64(l.p.Jitter.Duration)))
	}
	return d
}

// gossipReceived is a gossip message reaching n from its neighbour from.
func (s *Sim) gossipReceived(n, from *node, t *topic, frame []byte) {
	if !t.isMember(n) {
		return // unsubscribed meanwhile
	}
	n.stats.GossipReceived++
	id, _, ok := gossipID(frame)
	if !ok {
		s.errs++
		return
	}
	if n.gseen == nil {
		n.gseen = map[gossipKey]struct{}{}
	}
	if _, seen := n.gseen[id]; seen {
		n.stats.GossipDuplicates++
		s.trace.rec(s.now, "gossip", n.idx, 0, "dup from "+strconv.Itoa(from.idx))
		return
	}
	n.gseen[id] = struct{}{}
	s.remember(n, t, id, frame)
	s.trace.rec(s.now, "gossip", n.idx, 0, "from "+strconv.Itoa(from.idx))
	s.ensureMesh()
	s.step(n, routing.GossipReceived{Frame: frame})
	for _, o := range t.meshOf(n) {
		if o != from {
			s.gossipHop(n, o, t, frame, s.gossipRng)
		}
	}
}

// memberNeighbours are n's up neighbours over usable IP links that are
// members of t, each once, in link order.
func (s *Sim) memberNeighbours(t *topic, n *node) []*node {
	var out []*node
	for _, l := range n.links {
		o := l.other(n)
		if l.usable() && l.kind() == routing.LinkIP && t.isMember(o) && !containsNode(out, o) {
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
// changed: topic by topic, each up member in index order grafts member
// neighbours in a random order until it has D, skipping those that
// already have Dhi.
func (s *Sim) ensureMesh() {
	if !s.meshDirty {
		return
	}
	s.meshDirty = false
	for _, t := range s.topics {
		s.drawMesh(t)
	}
}

func (s *Sim) drawMesh(t *topic) {
	g := s.sc.Gossip
	for i := range t.mesh {
		t.mesh[i] = t.mesh[i][:0]
	}
	for _, n := range s.nodes {
		if !t.member[n.idx] || !n.up {
			continue
		}
		cand := s.memberNeighbours(t, n)
		s.gossipRng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
		for _, o := range cand {
			if len(t.mesh[n.idx]) >= g.MeshDegree {
				break
			}
			if len(t.mesh[o.idx]) < g.MeshDegreeHigh && !containsNode(t.mesh[n.idx], o) {
				t.mesh[n.idx] = append(t.mesh[n.idx], o)
				t.mesh[o.idx] = append(t.mesh[o.idx], n)
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

// remember puts a message a member saw into its message cache, and starts
// its heartbeat if it had none.
func (s *Sim) remember(n *node, t *topic, id gossipKey, frame []byte) {
	if s.sc.Gossip.Lazy != "on" || !t.isMember(n) {
		return
	}
	n.mcache = append(n.mcache, gossipMsg{t: t, id: id, frame: append([]byte(nil), frame...), at: s.now})
	if !n.hbOn {
		n.hbOn = true
		// The heartbeat runs at its own phase on every node.
		phase := time.Duration(s.lazyRng.Int64N(int64(s.sc.Gossip.Heartbeat.Duration)))
		s.push(event{at: s.now.Add(phase), kind: evHeartbeat, node: n, gen: n.gen})
	}
}

// heartbeat is a member's gossipsub heartbeat: it forgets messages older
// than historyLength heartbeats and announces those of the last
// historyGossip heartbeats (IHAVE) to max(Dlazy, gossipFactor x eligible)
// random member neighbours outside its mesh. It stops while the cache is
// empty (nothing to announce: the model saves the events).
func (s *Sim) heartbeat(n *node) {
	hb := s.sc.Gossip.Heartbeat.Duration
	keep := n.mcache[:0]
	var ids map[*topic][]gossipKey
	for _, m := range n.mcache {
		if age := s.now.Sub(m.at); age < historyLength*hb {
			keep = append(keep, m)
			if age < historyGossip*hb {
				if ids == nil {
					ids = map[*topic][]gossipKey{}
				}
				ids[m.t] = append(ids[m.t], m.id)
			}
		}
	}
	clear(n.mcache[len(keep):])
	n.mcache = keep
	for _, t := range s.topics { // in topic order: deterministic
		if len(ids[t]) > 0 {
			s.iHaveTo(n, t, ids[t])
		}
	}
	if len(n.mcache) == 0 {
		n.hbOn = false
		return
	}
	s.push(event{at: s.now.Add(hb), kind: evHeartbeat, node: n, gen: n.gen})
}

// iHaveTo announces ids of topic t to max(Dlazy, gossipFactor x eligible)
// random member neighbours of n outside its mesh.
func (s *Sim) iHaveTo(n *node, t *topic, ids []gossipKey) {
	s.ensureMesh()
	var peers []*node
	for _, o := range s.memberNeighbours(t, n) {
		if !containsNode(t.meshOf(n), o) {
			peers = append(peers, o)
		}
	}
	s.lazyRng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	k := max(s.sc.Gossip.LazyDegree, int(gossipFactor*float64(len(peers))))
	for _, o := range peers[:min(k, len(peers))] {
		s.gossipControl(n, o, t, evIHave, ids)
	}
}

// gossipControl sends an IHAVE or IWANT with message IDs from n to o, over
// the first usable IP link between them, with a gossip hop's delay.
func (s *Sim) gossipControl(n, o *node, t *topic, kind evKind, ids []gossipKey) {
	l := s.ipLinkTo(n, o)
	if l == nil {
		return
	}
	name := "gossip/ihave"
	if kind == evIWant {
		name = "gossip/iwant"
	}
	s.count(name, len(ids)*len(gossipKey{}))
	s.fappGossipBytes(t, len(ids)*len(gossipKey{}))
	s.push(event{at: s.now.Add(s.hopDelay(l, s.lazyRng)), kind: kind, node: o, from: n, topic: t, ids: slices.Clone(ids)})
}

// iHave is an IHAVE from a neighbour: a member asks (IWANT) for the
// messages it has not seen.
func (s *Sim) iHave(n, from *node, t *topic, ids []gossipKey) {
	if !t.isMember(n) {
		return
	}
	var want []gossipKey
	for _, id := range ids {
		if _, seen := n.gseen[id]; !seen {
			want = append(want, id)
		}
	}
	s.trace.rec(s.now, "ihave", n.idx, 0, strconv.Itoa(len(ids))+" from "+strconv.Itoa(from.idx)+", want "+strconv.Itoa(len(want)))
	if len(want) > 0 {
		s.gossipControl(n, from, t, evIWant, want)
	}
}

// iWant is an IWANT from a neighbour: n sends the messages it still has in
// its cache.
func (s *Sim) iWant(n, from *node, ids []gossipKey) {
	s.trace.rec(s.now, "iwant", n.idx, 0, strconv.Itoa(len(ids))+" from "+strconv.Itoa(from.idx))
	for _, id := range ids {
		for _, m := range n.mcache {
			if m.id == id {
				s.gossipHop(n, from, m.t, m.frame, s.lazyRng)
				break
			}
		}
	}
}
