package sim

import (
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"meshd.dev/meshd/fapp"
)

// FAPPSummary is the FAPP part of summary.json (docs/simulations.md,
// "FAPP"). Spread figures are over the announces released during the run:
// relays are the FAPP relays, followers every node that follows the
// announce's region (relays included), the publisher excluded from both.
type FAPPSummary struct {
	Regions            int `json:"regions"`
	Relays             int `json:"relays"`
	Therapists         int `json:"therapists"`
	ChildrenTherapists int `json:"children_therapists"`
	Patients           int `json:"patients"`
	Announces          int `json:"announces"`
	// AnnounceBytesMean is the mean encoded announce (the channel frame
	// adds protocol.ChannelOverhead).
	AnnounceBytesMean float64 `json:"announce_bytes_mean"`
	// RelayReach: first deliveries to relays over announces x relays.
	// RelayLatency: percentiles over those deliveries.
	RelayReach   float64      `json:"relay_reach"`
	RelayLatency LatencyStats `json:"relay_latency"`
	// Relay50 and Relay99: per announce, the time until 50 % and 99 % of
	// the relays had it, over the announces that got there (Share: their
	// share of all announces; Max: the slowest).
	Relay50 SpreadStats `json:"time_to_50pct_relays"`
	Relay99 SpreadStats `json:"time_to_99pct_relays"`
	// The same for the region's followers.
	FollowerReach   float64      `json:"follower_reach"`
	FollowerLatency LatencyStats `json:"follower_latency"`
	Follower99      SpreadStats  `json:"time_to_99pct_followers"`
	// Queries: patient queries (each answered from the patient's own
	// index). Existing: those for which a matching free slot existed (in
	// the therapists' latest announces). Found: those whose results held a
	// matching slot that exists. Success = Found / Queries, Recall = Found
	// / Existing. StaleResults: results no longer free (or gone).
	Queries      int     `json:"queries"`
	Existing     int     `json:"queries_with_a_match"`
	Found        int     `json:"queries_found"`
	Success      float64 `json:"query_success"`
	Recall       float64 `json:"query_recall"`
	StaleResults int     `json:"stale_results"`
	// Reservations: requests sent; Confirmed and Declined: answers that
	// reached the patient; Refused: requests the therapist's book refused
	// because the slot was no longer on offer (taken, its VERGEBEN not yet
	// released: the patient gets no answer, and they count as unanswered
	// too); RoundTrip: request to answer at the patient (ConfirmDelay
	// included).
	Reservations int          `json:"reservations"`
	Refused      int          `json:"refused_not_on_offer"`
	Confirmed    int          `json:"confirmed"`
	Declined     int          `json:"declined"`
	Unanswered   int          `json:"unanswered"`
	RoundTrip    LatencyStats `json:"reservation_round_trip"`
	// Dropped: FAPP messages a node could not use (malformed, expired,
	// refused by a book).
	Dropped uint64 `json:"dropped"`
	// Traffic: region channel frames on radio (with their airtime) and on
	// IP/TCP links, gossip of region topics (messages and IHAVE/IWANT, with
	// bytes), and FAPP unicast bodies submitted to the engines (their
	// sealed envelopes are in the unicast figures).
	LoRaFrames     uint64  `json:"lora_frames"`
	LoRaBytes      uint64  `json:"lora_bytes"`
	LoRaAirtimeS   float64 `json:"lora_airtime_s"`
	LinkFrames     uint64  `json:"link_frames"`
	LinkBytes      uint64  `json:"link_bytes"`
	GossipMessages uint64  `json:"gossip_messages"`
	GossipBytes    uint64  `json:"gossip_bytes"`
	DirectMessages uint64  `json:"unicast_messages"`
	DirectBytes    uint64  `json:"unicast_body_bytes"`
}

// SpreadStats are per-announce times to a reach.
type SpreadStats struct {
	Share float64 `json:"share"`
	N     int     `json:"n"`
	P50   float64 `json:"p50_s"`
	P90   float64 `json:"p90_s"`
	P99   float64 `json:"p99_s"`
	Max   float64 `json:"max_s"`
}

func latencyStats(xs []float64) LatencyStats {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return LatencyStats{N: len(xs), P50: round(percentile(xs, 50), 3), P90: round(percentile(xs, 90), 3), P99: round(percentile(xs, 99), 3)}
}

// timeTo returns when share p (0..1) of targets had the announce, from its
// sorted first-delivery latencies, or false if too few got it.
func timeTo(sorted []float64, targets int, p float64) (float64, bool) {
	k := max(1, int(math.Ceil(p*float64(targets)-1e-9)))
	if targets == 0 || len(sorted) < k {
		return 0, false
	}
	return sorted[k-1], true
}

func spread(times []float64, of int) SpreadStats {
	if of == 0 {
		return SpreadStats{}
	}
	l := latencyStats(times)
	st := SpreadStats{Share: round(float64(len(times))/float64(of), 4), N: l.N, P50: l.P50, P90: l.P90, P99: l.P99}
	if len(times) > 0 {
		st.Max = round(slices.Max(times), 3)
	}
	return st
}

// fappSummary computes the FAPP part of the summary.
func (s *Sim) fappSummary() *FAPPSummary {
	f := s.fapp
	if f == nil {
		return nil
	}
	sum := &FAPPSummary{Regions: len(f.regions), Relays: len(f.relays), Therapists: len(f.therapists), Announces: len(f.ann)}
	for _, th := range f.therapists {
		if th.children {
			sum.ChildrenTherapists++
		}
	}
	for _, ps := range f.patients {
		sum.Patients += len(ps)
	}
	var relayLat, follLat, t50, t99, f99 []float64
	relayPairs, follPairs, bytes := 0, 0, 0
	for _, a := range f.ann {
		bytes += a.size
		relays := len(f.relays)
		if f.nodes[a.from.idx].role == roleRelay {
			relays--
		}
		foll := f.followers[a.region] - 1
		relayPairs += relays
		follPairs += foll
		relayLat = append(relayLat, a.relayLat...)
		follLat = append(follLat, a.follLat...)
		rl := slices.Clone(a.relayLat)
		slices.Sort(rl)
		if t, ok := timeTo(rl, relays, 0.5); ok {
			t50 = append(t50, t)
		}
		if t, ok := timeTo(rl, relays, 0.99); ok {
			t99 = append(t99, t)
		}
		fl := slices.Clone(a.follLat)
		slices.Sort(fl)
		if t, ok := timeTo(fl, foll, 0.99); ok {
			f99 = append(f99, t)
		}
	}
	if len(f.ann) > 0 {
		sum.AnnounceBytesMean = round(float64(bytes)/float64(len(f.ann)), 1)
	}
	if relayPairs > 0 {
		sum.RelayReach = round(float64(len(relayLat))/float64(relayPairs), 4)
	}
	if follPairs > 0 {
		sum.FollowerReach = round(float64(len(follLat))/float64(follPairs), 4)
	}
	sum.RelayLatency, sum.FollowerLatency = latencyStats(relayLat), latencyStats(follLat)
	if len(f.relays) > 0 {
		sum.Relay50, sum.Relay99 = spread(t50, len(f.ann)), spread(t99, len(f.ann))
	}
	sum.Follower99 = spread(f99, len(f.ann))
	s.fappQueryFigures(sum)
	t := f.traffic
	sum.Dropped = f.dropped
	sum.LoRaFrames, sum.LoRaBytes, sum.LoRaAirtimeS = t.loraFrames, t.loraBytes, round(t.airtime.Seconds(), 3)
	sum.LinkFrames, sum.LinkBytes, sum.GossipMessages, sum.GossipBytes = t.linkFrames, t.linkBytes, t.gossipMsgs, t.gossipBytes
	sum.DirectMessages, sum.DirectBytes = t.directMsgs, t.directBytes
	return sum
}

func (s *Sim) fappQueryFigures(sum *FAPPSummary) {
	f := s.fapp
	sum.Queries, sum.Existing, sum.Found, sum.StaleResults = f.queries, f.existing, f.found, f.stale
	if f.queries > 0 {
		sum.Success = round(float64(f.found)/float64(f.queries), 4)
	}
	if f.existing > 0 {
		sum.Recall = round(float64(f.found)/float64(f.existing), 4)
	}
	sum.Reservations, sum.Refused = len(f.res), f.refused
	var rtt []float64
	for _, r := range f.res {
		switch {
		case !r.done:
			sum.Unanswered++
			continue
		case r.state == fapp.Bestaetigt:
			sum.Confirmed++
		default:
			sum.Declined++
		}
		rtt = append(rtt, r.at.Sub(r.sent).Seconds())
	}
	sum.RoundTrip = latencyStats(rtt)
}

// fappNodeColumns are a node's FAPP columns of nodes.csv: its role, its
// home region ("all" for a relay) and the announces its index holds at the
// end (all empty without FAPP or for a node not taking part).
func (s *Sim) fappNodeColumns(n *node) []string {
	if s.fapp == nil || s.fapp.nodes[n.idx] == nil {
		return []string{"", "", ""}
	}
	fn := s.fapp.nodes[n.idx]
	region := fn.region.String()
	if fn.role == roleRelay {
		region = "all"
	}
	return []string{fn.role.String(), region, strconv.Itoa(fn.index.Len())}
}

// writeFAPP writes fapp_announces.csv and fapp_reservations.csv.
func (s *Sim) writeFAPP(dir string) error {
	f := s.fapp
	if f == nil {
		return nil
	}
	opt := func(v float64, ok bool) string {
		if !ok {
			return ""
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	rows := [][]string{{"announce", "therapist", "region", "sequence", "sent_s", "bytes", "relays_reached", "relay_share",
		"time_to_50pct_relays_s", "time_to_99pct_relays_s", "followers_reached", "follower_share", "time_to_99pct_followers_s"}}
	for i, a := range f.ann {
		relays := len(f.relays)
		foll := f.followers[a.region] - 1
		rl, fl := slices.Clone(a.relayLat), slices.Clone(a.follLat)
		slices.Sort(rl)
		slices.Sort(fl)
		share := func(n, of int) string {
			if of == 0 {
				return ""
			}
			return strconv.FormatFloat(float64(n)/float64(of), 'f', 4, 64)
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), a.from.name, a.region.String(), strconv.FormatUint(uint64(a.seq), 10),
			secs(a.sent.Sub(Epoch)), strconv.Itoa(a.size), strconv.Itoa(len(rl)), share(len(rl), relays),
			opt(timeTo(rl, relays, 0.5)), opt(timeTo(rl, relays, 0.99)), strconv.Itoa(len(fl)), share(len(fl), foll), opt(timeTo(fl, foll, 0.99))})
	}
	if err := WriteCSV(filepath.Join(dir, "fapp_announces.csv"), rows); err != nil {
		return err
	}
	rows = [][]string{{"reservation", "patient", "therapist", "sent_s", "answer", "round_trip_s"}}
	for i, r := range f.res {
		row := []string{strconv.Itoa(i + 1), r.patient.name, r.th.n.name, secs(r.sent.Sub(Epoch)), "", ""}
		if r.done {
			row[4], row[5] = r.state.String(), secs(r.at.Sub(r.sent))
		}
		rows = append(rows, row)
	}
	return WriteCSV(filepath.Join(dir, "fapp_reservations.csv"), rows)
}
