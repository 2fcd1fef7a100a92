package sim

import (
	"fmt"
	"strings"
	"testing"

	"meshd.dev/meshd/routing"
)

const bridged = "../scenarios/bridged_channels.toml"

// bridgedFloor is the channel delivery ratio the bridged scenario reached
// when this test was written (0.994 for seed 1), rounded down: the run is
// deterministic, so a lower ratio is a change of behaviour, not noise.
const bridgedFloor = 0.99

// crossReach is, over the broadcasts sent by nodes whose name starts with
// from, the share of (broadcast, member named to*) pairs delivered.
func crossReach(s *Sim, from, to string) (float64, int) {
	got, want, n := 0, 0, 0
	for i, src := range s.bcastFrom {
		if !strings.HasPrefix(src.name, from) {
			continue
		}
		n++
		for _, nd := range s.nodes {
			if nd.member && nd != src && strings.HasPrefix(nd.name, to) {
				want++
				if _, ok := nd.bseen[uint64(i+1)]; ok {
					got++
				}
			}
		}
	}
	return float64(got) / float64(max(want, 1)), n
}

// TestBridgedChannels runs the bridged scenario (two IP clusters with no IP
// path between them, a 60-node LoRa mesh, three bridges): no application
// gets a broadcast twice, the channel reaches its members at least as well
// as when measured, and frames cross from one IP cluster to the other
// through the radio, in both directions.
func TestBridgedChannels(t *testing.T) {
	s := runScenario(t, load(t, bridged), nil)
	sum := s.Summary()
	if sum.EngineErrors != 0 {
		t.Fatalf("%d engine errors", sum.EngineErrors)
	}
	if sum.ChannelMembers != 103 || sum.Broadcasts < 30 {
		t.Fatalf("%d members, %d broadcasts", sum.ChannelMembers, sum.Broadcasts)
	}
	for _, n := range s.nodes {
		if n.stats.BroadcastDuplicates != 0 {
			t.Errorf("%s: %d duplicate deliveries to the application", n.name, n.stats.BroadcastDuplicates)
		}
	}
	if sum.ChannelDuplicates != 0 || sum.ChannelDuplicatesMax != 0 {
		t.Errorf("summary: %d duplicates to apps, %d at the worst node", sum.ChannelDuplicates, sum.ChannelDuplicatesMax)
	}
	t.Logf("delivery ratio %.4f (by side %v, worst broadcast %.4f, full reach %.4f), latency p50 %.3f s p90 %.3f s p99 %.3f s, gossip %d messages (%d duplicates)",
		sum.ChannelDeliveryRatio, sum.ChannelRatioBySide, sum.ChannelRatioMin, sum.ChannelFullReach,
		sum.BroadcastLatencyP50, sum.BroadcastLatencyP90, sum.BroadcastLatencyP99, sum.Frames["gossip"], sum.GossipDuplicates)
	if sum.ChannelDeliveryRatio < bridgedFloor {
		t.Errorf("channel delivery ratio %.4f below the floor %.2f", sum.ChannelDeliveryRatio, bridgedFloor)
	}
	for _, side := range []string{"ip", "lora", "bridge"} {
		if r, ok := sum.ChannelRatioBySide[side]; !ok || r < 0.95 {
			t.Errorf("broadcasts from the %s side: delivery ratio %.4f (present %v)", side, r, ok)
		}
	}
	// Cluster A and cluster B share no IP path: what crosses went over the
	// radio through a bridge, and was gossiped again on the far side.
	// The floors are the measured reaches rounded down: cluster B has one
	// bridge, and a broadcast from A that gb loses on the radio (a
	// collision) never reaches B (nothing repairs it across the radio).
	for _, d := range []struct {
		from, to string
		floor    float64
	}{{"a", "b", 0.85}, {"b", "a", 0.95}, {"r", "a", 0.99}, {"r", "b", 0.99}, {"a", "r", 0.99}, {"b", "r", 0.99}} {
		r, n := crossReach(s, d.from, d.to)
		t.Logf("%s* -> %s*: %d broadcasts, reach %.4f", d.from, d.to, n, r)
		if n == 0 || r < d.floor {
			t.Errorf("%s* -> %s*: %d broadcasts, reach %.4f below %.2f", d.from, d.to, n, r, d.floor)
		}
	}
	if sum.Frames["gossip"] == 0 || sum.Frames["lora/bulk"] == 0 {
		t.Errorf("frames %v: no gossip or no radio flooding", sum.Frames)
	}
	// Same seed, same trace.
	if h := runScenario(t, load(t, bridged), nil).Summary().TraceSHA256; h != sum.TraceSHA256 {
		t.Errorf("same seed, trace hashes %s and %s", sum.TraceSHA256, h)
	}
}

// TestBridgedChannelsChurn: with the three bridges crashing and restarting
// (their engines forget the dedup cache and gossipsub its seen cache), still
// no application gets a broadcast twice.
func TestBridgedChannelsChurn(t *testing.T) {
	s := runScenario(t, load(t, bridged, `churn.mtbf="10m"`, `churn.mttr="1m"`, `churn.nodes=["ga","gb","gc"]`), nil)
	sum := s.Summary()
	if sum.Crashes < 3 {
		t.Fatalf("only %d crashes", sum.Crashes)
	}
	if sum.ChannelDuplicates != 0 || sum.EngineErrors != 0 {
		t.Fatalf("%d duplicates to apps, %d engine errors", sum.ChannelDuplicates, sum.EngineErrors)
	}
	t.Logf("%d crashes: delivery ratio %.4f, by side %v", sum.Crashes, sum.ChannelDeliveryRatio, sum.ChannelRatioBySide)
}

// TestGossipMembers: on an IP overlay, gossip delivers every broadcast to
// every member once and nothing to non-members; every mesh is symmetric,
// within Dhi, and has D peers wherever the node has D member neighbours
// that are not full.
func TestGossipMembers(t *testing.T) {
	doc := `seed = 3
duration = "10m"
[[topology]]
kind = "ba"
n = 40
m = 3
prefix = "n"
link = "ip"
ip = { latency = "10ms", jitter = "5ms" }
[gossip]
mesh_degree = 4
mesh_degree_high = 8
[traffic]
broadcast_rate = 0.002
start = "1m"
stop = "9m"
channel_members = [` + memberList(30) + `]
`
	sc, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := runScenario(t, sc, nil)
	sum := s.Summary()
	if sum.ChannelMembers != 30 || sum.Broadcasts < 10 {
		t.Fatalf("%d members, %d broadcasts", sum.ChannelMembers, sum.Broadcasts)
	}
	s.ensureMesh()
	mesh := s.topics[0].meshOf
	for _, n := range s.nodes {
		if !n.member {
			if n.stats.BroadcastsDelivered != 0 || n.stats.GossipReceived != 0 || len(mesh(n)) != 0 {
				t.Errorf("non-member %s: %d deliveries, %d gossip messages, mesh %d", n.name, n.stats.BroadcastsDelivered, n.stats.GossipReceived, len(mesh(n)))
			}
			continue
		}
		if n.stats.BroadcastDuplicates != 0 {
			t.Errorf("%s: %d duplicates to the application", n.name, n.stats.BroadcastDuplicates)
		}
		if len(mesh(n)) > 8 {
			t.Errorf("%s: mesh of %d above Dhi", n.name, len(mesh(n)))
		}
		for _, o := range mesh(n) {
			if !o.member || !containsNode(mesh(o), n) {
				t.Errorf("%s -> %s: mesh link not symmetric or to a non-member", n.name, o.name)
			}
		}
	}
	// Non-members do not forward (they have not subscribed), so only
	// members joined through members are reachable; with 30 of 40 on a BA
	// overlay of m = 3 they all are here.
	if sum.ChannelDeliveryRatio != 1 {
		t.Errorf("delivery ratio %.4f, by side %v", sum.ChannelDeliveryRatio, sum.ChannelRatioBySide)
	}
	// Flooding the publication and D-degree meshes send each broadcast
	// fewer times than every member to every member neighbour would.
	if perMsg := float64(sum.Frames["gossip"]) / float64(sum.Broadcasts); perMsg > 30*8 {
		t.Errorf("%.1f gossip messages per broadcast", perMsg)
	}
}

func memberList(k int) string {
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("%q", fmt.Sprintf("n%d", i))
	}
	return strings.Join(names, ", ")
}

// TestBadGossipScenarios: the gossip and membership fields are checked.
func TestBadGossipScenarios(t *testing.T) {
	base := "seed = 1\nduration = \"1m\"\n[[nodes]]\nname = \"a\"\n"
	for _, tc := range []struct{ doc, want string }{
		{base + "[gossip]\nmesh_degree = -1\n", "gossip.mesh_degree"},
		{base + "[gossip]\nmesh_degree = 8\nmesh_degree_high = 4\n", "gossip.mesh_degree_high"},
		{base + "[gossip]\nflood_publish = \"maybe\"\n", "gossip.flood_publish"},
		{base + "[gossip]\nhop_delay = \"-1s\"\n", "gossip.hop_delay"},
		{base + "[traffic]\nchannel_members = [\"zz\"]\n", "traffic.channel_members[0]"},
		{base + "[gossip]\nlazy = \"sometimes\"\n", "gossip.lazy"},
		{base + "[gossip]\nlazy_degree = -2\n", "gossip.lazy_degree"},
		{base + "[gossip]\nheartbeat = \"1us\"\n", "gossip.heartbeat"},
	} {
		_, err := Parse([]byte(tc.doc), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %s", tc.doc, err, tc.want)
		}
	}
}

// TestNonMemberBridges: bridges that have not joined the channel still
// carry radio broadcasts to the IP side (their engines relay every frame
// and publish it; gossipsub sends it to member neighbours as fanout), but
// gossip does not reach them (they are not subscribed), so nothing
// published on the IP side reaches the radio or the other cluster.
func TestNonMemberBridges(t *testing.T) {
	var members []string
	for _, p := range []struct {
		prefix string
		n      int
	}{{"a", 20}, {"b", 20}, {"r", 60}} {
		for i := range p.n {
			members = append(members, fmt.Sprintf("%q", fmt.Sprintf("%s%d", p.prefix, i)))
		}
	}
	s := runScenario(t, load(t, bridged, "traffic.channel_members=["+strings.Join(members, ",")+"]"), nil)
	sum := s.Summary()
	if sum.ChannelMembers != 100 || sum.ChannelDuplicates != 0 {
		t.Fatalf("%d members, %d duplicates to apps", sum.ChannelMembers, sum.ChannelDuplicates)
	}
	for _, d := range []struct {
		from, to string
		min, max float64
	}{{"r", "a", 0.95, 1}, {"r", "b", 0.95, 1}, {"a", "r", 0, 0}, {"a", "b", 0, 0}, {"b", "a", 0, 0}} {
		r, n := crossReach(s, d.from, d.to)
		if n == 0 || r < d.min || r > d.max {
			t.Errorf("%s* -> %s*: %d broadcasts, reach %.4f, want %.2f..%.2f", d.from, d.to, n, r, d.min, d.max)
		}
	}
	for _, g := range []string{"ga", "gb", "gc"} {
		if st, _ := s.Stats(g); st.BroadcastsDelivered != 0 || st.GossipReceived != 0 {
			t.Errorf("non-member %s: %d deliveries, %d gossip messages", g, st.BroadcastsDelivered, st.GossipReceived)
		}
	}
}

// TestGossipHops: gossip goes only through members, and on a line of three
// members a broadcast takes one gossip hop (link latency plus hop delay) to
// the middle and two to the far end, with one gossip message per hop and no
// duplicates.
func TestGossipHops(t *testing.T) {
	doc := `seed = 5
duration = "3m"
[[topology]]
kind = "ring"
n = 3
prefix = "n"
link = "ip"
ip = { latency = "10ms" }
[[nodes]]
name = "x"
[[links]]
a = "n2"
b = "x"
latency = "10ms"
[gossip]
hop_delay = "2ms"
[traffic]
broadcast_rate = 0.01
start = "1m"
stop = "2m"
channel_members = ["n0", "x"]
`
	// A ring of 3 is a triangle; x hangs off n2, and only n0 and x are
	// members (and broadcast): n2 does not forward for them.
	sc, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := runScenario(t, sc, nil).Summary()
	if sum.Broadcasts == 0 || sum.BroadcastRx != 0 || sum.Frames["gossip"] != 0 {
		t.Fatalf("through a non-member: %d broadcasts, %d deliveries, %d gossip messages", sum.Broadcasts, sum.BroadcastRx, sum.Frames["gossip"])
	}
	sc, err = Parse([]byte(strings.Replace(doc, `channel_members = ["n0", "x"]`, `channel_members = ["n0", "n2", "x"]`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum = runScenario(t, sc, nil).Summary()
	// Members n0, n2, x on the line n0-n2-x: each broadcast makes one hop
	// to n2 (flood publish) and one on (n2's mesh), or two from n2.
	if sum.Broadcasts == 0 || sum.BroadcastRx != 2*sum.Broadcasts || sum.Frames["gossip"] != 2*sum.Broadcasts || sum.GossipDuplicates != 0 {
		t.Fatalf("%d broadcasts, %d deliveries, %d gossip messages, %d duplicates", sum.Broadcasts, sum.BroadcastRx, sum.Frames["gossip"], sum.GossipDuplicates)
	}
	if lat := sum.BroadcastLatencyByPath["ip_to_ip"]; lat.P50 != 0.012 || lat.P99 != 0.024 {
		t.Fatalf("latency %+v, want 0.012 s for one hop and 0.024 s for two", lat)
	}
}

// TestDuplicateCounting: the duplicate counter sees a second delivery of a
// broadcast to an application, and one back to its sender (so the zero of
// TestBridgedChannels is a measurement, not a counter that never moves).
func TestDuplicateCounting(t *testing.T) {
	s := runScenario(t, load(t, bridged, `duration="12m"`, `traffic.stop="11m"`), nil)
	if s.Summary().ChannelDuplicates != 0 || len(s.bcastFrom) == 0 {
		t.Fatalf("%d broadcasts, %d duplicates", len(s.bcastFrom), s.Summary().ChannelDuplicates)
	}
	body := make([]byte, 32)
	body[7] = 1 // broadcast number 1
	from := s.bcastFrom[0]
	var got *node
	for _, n := range s.nodes {
		if _, ok := n.bseen[1]; ok && n != from {
			got = n
			break
		}
	}
	if got == nil {
		t.Fatal("nobody got broadcast 1")
	}
	before := got.stats.BroadcastsDelivered
	s.deliver(got, &routing.Delivery{Broadcast: true, Body: body})
	s.deliver(from, &routing.Delivery{Broadcast: true, Body: body})
	sum := s.Summary()
	if got.stats.BroadcastDuplicates != 1 || from.stats.BroadcastDuplicates != 1 || got.stats.BroadcastsDelivered != before ||
		sum.ChannelDuplicates != 2 || sum.ChannelDuplicatesMax != 1 {
		t.Fatalf("duplicates: %s %d, sender %s %d, summary %d (max %d)", got.name, got.stats.BroadcastDuplicates,
			from.name, from.stats.BroadcastDuplicates, sum.ChannelDuplicates, sum.ChannelDuplicatesMax)
	}
}

// TestGossipLazyRepair: with one mesh peer each (D = Dhi = 1) the four
// members of a ring form two separate meshes, and without flood publishing
// a broadcast stays in its sender's mesh; IHAVE/IWANT gossip carries it to
// the other mesh. With gossip off half the deliveries are missing.
func TestGossipLazyRepair(t *testing.T) {
	doc := `seed = 11
duration = "4m"
[[topology]]
kind = "ring"
n = 4
prefix = "n"
link = "ip"
ip = { latency = "10ms", jitter = "5ms" }
[gossip]
mesh_degree = 1
mesh_degree_high = 1
flood_publish = "off"
[traffic]
broadcast_rate = 0.02
start = "1m"
stop = "3m"
`
	run := func(lazy string) Summary {
		sc, err := Parse([]byte(doc), []string{"gossip.lazy=" + lazy})
		if err != nil {
			t.Fatal(err)
		}
		return runScenario(t, sc, nil).Summary()
	}
	off, on := run("off"), run("on")
	if off.Broadcasts < 5 || off.ChannelDeliveryRatio > 0.34 || off.Frames["gossip/ihave"] != 0 {
		t.Errorf("lazy off: %d broadcasts, delivery ratio %.4f, frames %v", off.Broadcasts, off.ChannelDeliveryRatio, off.Frames)
	}
	if on.ChannelDeliveryRatio != 1 || on.ChannelDuplicates != 0 || on.Frames["gossip/iwant"] == 0 {
		t.Errorf("lazy on: delivery ratio %.4f, %d duplicates, frames %v", on.ChannelDeliveryRatio, on.ChannelDuplicates, on.Frames)
	}
	// The repair costs about a heartbeat and a round trip.
	if p := on.BroadcastLatencyByPath["ip_to_ip"]; p.P99 > 1.2 || p.P99 < 0.02 {
		t.Errorf("lazy on: latency %+v", p)
	}
}
