package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Summary is summary.json: what a run did, deterministic for a scenario and
// seed (no wall-clock figures).
type Summary struct {
	Scenario      string            `json:"scenario"`
	Seed          uint64            `json:"seed"`
	Simulated     string            `json:"simulated"`
	Nodes         int               `json:"nodes"`
	RadioNodes    int               `json:"radio_nodes"`
	IPLinks       int               `json:"ip_links"`
	Events        uint64            `json:"events"`
	TraceEvents   uint64            `json:"trace_events"`
	TraceSHA256   string            `json:"trace_sha256"`
	EngineErrors  uint64            `json:"engine_errors"`
	Sent          int               `json:"messages_sent"`
	Refused       int               `json:"messages_refused"`
	Delivered     int               `json:"messages_delivered"`
	DeliveryRatio float64           `json:"delivery_ratio"`
	LatencyP50    float64           `json:"latency_p50_s"`
	LatencyP90    float64           `json:"latency_p90_s"`
	LatencyP99    float64           `json:"latency_p99_s"`
	HopsMean      float64           `json:"hops_mean"`
	HopsMax       int               `json:"hops_max"`
	Hotspots      []string          `json:"hotspots,omitempty"`
	Broadcasts    uint64            `json:"broadcasts_sent"`
	BroadcastRx   uint64            `json:"broadcast_deliveries"`
	Frames        map[string]uint64 `json:"frames"`
	Bytes         map[string]uint64 `json:"bytes"`
	Collisions    uint64            `json:"collisions"`
	HalfDuplex    uint64            `json:"half_duplex_losses"`
	Deferrals     uint64            `json:"duty_cycle_deferrals"`
	CarrierWaits  uint64            `json:"carrier_sense_waits"`
	BlockedS      float64           `json:"duty_cycle_blocked_s"`
	AirtimeS      float64           `json:"airtime_s"`
	Crashes       uint64            `json:"node_crashes"`
	DowntimeS     float64           `json:"node_downtime_s"`

	// RadioNeighbours is the mean number of radio neighbours per radio
	// node (receivers of its frames at or above the threshold).
	RadioNeighbours float64 `json:"radio_neighbours_mean,omitempty"`

	// Broadcast latency percentiles over deliveries (of bodies of 8 bytes
	// or more, which carry the broadcast's number).
	BroadcastLatencyP50 float64 `json:"broadcast_latency_p50_s"`
	BroadcastLatencyP90 float64 `json:"broadcast_latency_p90_s"`
	BroadcastLatencyP99 float64 `json:"broadcast_latency_p99_s"`

	// Channel figures over the numbered broadcasts (bodies of 8 bytes or
	// more). ChannelMembers joined the channel; the delivery ratio is the
	// deliveries to members other than the sender over broadcasts x (members
	// - 1), whole and by the sender's side (ip: IP links only, lora: radio
	// only, bridge: both); the minimum is the worst single broadcast's, full
	// reach the share of broadcasts that reached every member. Duplicates
	// are deliveries to an application of a broadcast it already had (must
	// be 0), in all and at the worst node. Gossip duplicates are messages
	// gossipsub's seen cache dropped (normal: mesh redundancy).
	ChannelMembers       int                `json:"channel_members"`
	ChannelDeliveryRatio float64            `json:"channel_delivery_ratio"`
	ChannelRatioBySide   map[string]float64 `json:"channel_delivery_ratio_by_side,omitempty"`
	ChannelRatioMin      float64            `json:"channel_delivery_ratio_min"`
	ChannelFullReach     float64            `json:"channel_full_reach_share"`
	ChannelDuplicates    uint64             `json:"channel_duplicates_to_apps"`
	ChannelDuplicatesMax uint64             `json:"channel_duplicates_max_per_node"`
	GossipDuplicates     uint64             `json:"gossip_duplicates"`
	// BroadcastLatencyByPath splits the broadcast latencies by the sides
	// of the sender and the receiver ("ip_to_lora": sent on the IP side,
	// delivered on the radio).
	BroadcastLatencyByPath map[string]LatencyStats `json:"broadcast_latency_by_path,omitempty"`
	// FAPP holds the FAPP workload's figures (only with one).
	FAPP *FAPPSummary `json:"fapp,omitempty"`

	// Broadcasts whatever the strategy (broadcast.strategy): the reach is
	// the mean share of the other channel members a numbered broadcast
	// reached (the channel delivery ratio), transmissions per broadcast
	// the radio frames that carried broadcasts (meshd's channel frames,
	// lora/bulk, or a baseline's, lora/baseline) over the broadcasts sent,
	// and their airtime. AirtimeByKind splits the radio airtime by the
	// frames' kinds.
	BroadcastStrategy string             `json:"broadcast_strategy"`
	BroadcastReach    float64            `json:"broadcast_reach"`
	BroadcastTxPer    float64            `json:"broadcast_transmissions_per_broadcast"`
	BroadcastAirtimeS float64            `json:"broadcast_airtime_s"`
	AirtimeByKind     map[string]float64 `json:"airtime_by_kind_s"`
}

// LatencyStats are the percentiles of a set of latencies.
type LatencyStats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_s"`
	P90 float64 `json:"p90_s"`
	P99 float64 `json:"p99_s"`
}

// percentile returns the nearest-rank p-th percentile of sorted xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(p/100*float64(len(xs))+0.999999) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func round(x float64, digits int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', digits, 64), 64)
	return v
}

// Summary computes the run's summary.
func (s *Sim) Summary() Summary {
	sum := Summary{
		Scenario: s.sc.Name, Seed: s.sc.Seed, Simulated: s.now.Sub(Epoch).String(),
		Nodes: len(s.nodes), RadioNodes: len(s.radioOf), IPLinks: len(s.links),
		Events: s.events, TraceEvents: s.trace.n, TraceSHA256: s.trace.Sum(), EngineErrors: s.errs,
		Sent: len(s.msgs), Broadcasts: s.bcasts, BroadcastRx: s.bcastRx,
		Frames: s.frames, Bytes: s.bytes,
	}
	sum.RadioNeighbours = s.radioNeighboursMean()
	var lat []float64
	hops := 0
	for _, m := range s.msgs {
		if m.refused {
			sum.Refused++
		}
		if m.delivered {
			sum.Delivered++
			lat = append(lat, m.at.Sub(m.sent).Seconds())
			hops += int(m.hops)
			sum.HopsMax = max(sum.HopsMax, int(m.hops))
		}
	}
	if sum.Sent > 0 {
		sum.DeliveryRatio = round(float64(sum.Delivered)/float64(sum.Sent), 4)
	}
	if sum.Delivered > 0 {
		sum.HopsMean = round(float64(hops)/float64(sum.Delivered), 3)
	}
	for _, n := range s.hot {
		sum.Hotspots = append(sum.Hotspots, n.name)
	}
	bl := slices.Clone(s.bcastLat)
	slices.Sort(bl)
	sum.BroadcastLatencyP50 = round(percentile(bl, 50), 3)
	sum.BroadcastLatencyP90 = round(percentile(bl, 90), 3)
	sum.BroadcastLatencyP99 = round(percentile(bl, 99), 3)
	s.channelSummary(&sum)
	s.broadcastSummary(&sum)
	slices.Sort(lat)
	sum.LatencyP50 = round(percentile(lat, 50), 3)
	sum.LatencyP90 = round(percentile(lat, 90), 3)
	sum.LatencyP99 = round(percentile(lat, 99), 3)
	var blocked, air, down time.Duration
	for _, n := range s.nodes {
		sum.Crashes += n.stats.Crashes
		down += n.stats.Downtime
		sum.Collisions += n.stats.Collisions
		sum.HalfDuplex += n.stats.HalfDuplex
		sum.Deferrals += n.stats.Deferrals
		sum.CarrierWaits += n.stats.CarrierWaits
		blocked += n.stats.Blocked
		air += n.stats.Airtime
	}
	sum.BlockedS = round(blocked.Seconds(), 3)
	sum.AirtimeS = round(air.Seconds(), 3)
	sum.DowntimeS = round(down.Seconds(), 3)
	sum.FAPP = s.fappSummary()
	return sum
}

// side names where a node sits: "ip" (IP links only), "lora" (a radio
// only) or "bridge" (both).
func (n *node) side() string {
	switch {
	case n.radioID >= 0 && len(n.links) > 0:
		return "bridge"
	case n.radioID >= 0:
		return "lora"
	}
	return "ip"
}

// channelSummary fills in the channel figures.
func (s *Sim) channelSummary(sum *Summary) {
	sum.ChannelMembers = s.members
	for path, xs := range s.bcastLatBy {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		if sum.BroadcastLatencyByPath == nil {
			sum.BroadcastLatencyByPath = map[string]LatencyStats{}
		}
		sum.BroadcastLatencyByPath[path] = LatencyStats{N: len(xs),
			P50: round(percentile(xs, 50), 3), P90: round(percentile(xs, 90), 3), P99: round(percentile(xs, 99), 3)}
	}
	for _, n := range s.nodes {
		sum.ChannelDuplicates += n.stats.BroadcastDuplicates
		sum.ChannelDuplicatesMax = max(sum.ChannelDuplicatesMax, n.stats.BroadcastDuplicates)
		sum.GossipDuplicates += n.stats.GossipDuplicates
	}
	others := s.members - 1
	if len(s.bcastReach) == 0 || others < 1 {
		return
	}
	got, want := map[string]int{}, map[string]int{}
	full, total := 0, 0
	sum.ChannelRatioMin = 1
	for i, r := range s.bcastReach {
		side := s.bcastFrom[i].side()
		got[side] += r
		want[side] += others
		total += r
		if r == others {
			full++
		}
		sum.ChannelRatioMin = min(sum.ChannelRatioMin, float64(r)/float64(others))
	}
	n := len(s.bcastReach)
	sum.ChannelDeliveryRatio = round(float64(total)/float64(n*others), 4)
	sum.ChannelRatioMin = round(sum.ChannelRatioMin, 4)
	sum.ChannelFullReach = round(float64(full)/float64(n), 4)
	sum.ChannelRatioBySide = map[string]float64{}
	for side, w := range want {
		sum.ChannelRatioBySide[side] = round(float64(got[side])/float64(w), 4)
	}
}

// Stats returns the named node's counters (for tests).
func (s *Sim) Stats(name string) (NodeStats, bool) {
	n := s.byName[name]
	if n == nil {
		return NodeStats{}, false
	}
	return n.stats, true
}

// WriteOutputs writes the resolved scenario, summary.json, messages.csv,
// broadcasts.csv and nodes.csv into dir.
func (s *Sim) WriteOutputs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sc, err := s.sc.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scenario.toml"), sc, 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(s.Summary(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	msgs := [][]string{{"id", "ref", "source", "destination", "sent_s", "delivered", "delivered_s", "latency_s", "hops", "refused", "kind", "reach"}}
	for _, m := range s.msgs {
		id := ""
		if m.hasID {
			id = fmt.Sprintf("%x", m.id[:])
		}
		row := []string{id, strconv.FormatUint(m.ref, 10), m.src.name, m.dst.name, secs(m.sent.Sub(Epoch)), strconv.FormatBool(m.delivered), "", "", "", strconv.FormatBool(m.refused)}
		if m.delivered {
			row[6] = secs(m.at.Sub(Epoch))
			row[7] = secs(m.at.Sub(m.sent))
			row[8] = strconv.Itoa(int(m.hops))
		}
		msgs = append(msgs, append(row, "unicast", ""))
	}
	msgs = append(msgs, s.broadcastRows()...)
	if err := WriteCSV(filepath.Join(dir, "messages.csv"), msgs); err != nil {
		return err
	}
	if err := s.writeBroadcasts(filepath.Join(dir, "broadcasts.csv")); err != nil {
		return err
	}
	if err := s.writeFAPP(dir); err != nil {
		return err
	}
	nodes := [][]string{{"node", "name", "radio", "x", "y", "frames_sent", "bytes_sent", "frames_received", "bytes_received",
		"airtime_s", "duty_cycle_peak", "duty_cycle_blocked_s", "deferrals", "carrier_waits", "collisions", "half_duplex", "link_losses",
		"queue_drops", "custody_peak", "delivered", "crashes", "down_s",
		"channel_member", "broadcasts_delivered", "broadcast_duplicates", "gossip_received", "gossip_duplicates",
		"fapp_role", "fapp_region", "fapp_announces_held"}}
	u := strconv.FormatUint
	for _, n := range s.nodes {
		st := n.stats
		nodes = append(nodes, []string{strconv.Itoa(n.idx), n.name, strconv.FormatBool(n.radioID >= 0),
			strconv.FormatFloat(n.x, 'f', 1, 64), strconv.FormatFloat(n.y, 'f', 1, 64),
			u(st.FramesSent, 10), u(st.BytesSent, 10), u(st.FramesReceived, 10), u(st.BytesReceived, 10),
			secs(st.Airtime), strconv.FormatFloat(st.DutyPeak, 'f', 4, 64), secs(st.Blocked), u(st.Deferrals, 10), u(st.CarrierWaits, 10),
			u(st.Collisions, 10), u(st.HalfDuplex, 10), u(st.LinkLoss, 10), u(st.QueueDrops, 10), u(st.CustodyPeak, 10),
			u(st.Delivered, 10), u(st.Crashes, 10), secs(st.Downtime),
			strconv.FormatBool(n.member), u(st.BroadcastsDelivered, 10), u(st.BroadcastDuplicates, 10),
			u(st.GossipReceived, 10), u(st.GossipDuplicates, 10)})
		nodes[len(nodes)-1] = append(nodes[len(nodes)-1], s.fappNodeColumns(n)...)
	}
	return WriteCSV(filepath.Join(dir, "nodes.csv"), nodes)
}

// broadcastRows are messages.csv's rows of the numbered broadcasts:
// destination "*", delivered if they reached another member, the last
// first delivery's time and latency, and the reach (the share of the
// other members reached).
func (s *Sim) broadcastRows() [][]string {
	var rows [][]string
	others := max(s.members-1, 1)
	for i, from := range s.bcastFrom {
		row := []string{"", strconv.Itoa(i + 1), from.name, "*", secs(s.bcastAt[i].Sub(Epoch)), strconv.FormatBool(s.bcastReach[i] > 0), "", "", "", "false",
			"broadcast", strconv.FormatFloat(float64(s.bcastReach[i])/float64(others), 'f', 4, 64)}
		if !s.bcastLast[i].IsZero() {
			row[6] = secs(s.bcastLast[i].Sub(Epoch))
			row[7] = secs(s.bcastLast[i].Sub(s.bcastAt[i]))
		}
		rows = append(rows, row)
	}
	return rows
}

// writeBroadcasts writes broadcasts.csv: per numbered broadcast, its
// sender and side, when it was sent, how many other members it reached (and
// the share), and how long the last of them waited for it.
func (s *Sim) writeBroadcasts(path string) error {
	rows := [][]string{{"broadcast", "sender", "side", "sent_s", "members_reached", "reach", "last_delivery_latency_s"}}
	others := max(s.members-1, 1)
	for i, from := range s.bcastFrom {
		last := ""
		if !s.bcastLast[i].IsZero() {
			last = secs(s.bcastLast[i].Sub(s.bcastAt[i]))
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), from.name, from.side(), secs(s.bcastAt[i].Sub(Epoch)),
			strconv.Itoa(s.bcastReach[i]), strconv.FormatFloat(float64(s.bcastReach[i])/float64(others), 'f', 4, 64), last})
	}
	return WriteCSV(path, rows)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// WriteCSV writes rows (the first is the header) to a new CSV file.
func WriteCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// VerifyCacheStats reports how many announces the shared verification
// cache holds results for (adds) and how many verifications it saved
// (hits); both 0 without the cache.
func (s *Sim) VerifyCacheStats() (hits, adds uint64) {
	if s.vcache == nil {
		return 0, 0
	}
	return s.vcache.hits, s.vcache.adds
}
