package sim

import (
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/fapp"
)

// FAPP is the FAPP workload (docs/simulations.md, "FAPP"): therapists
// announce free slots into their 2-digit PLZ region's public channel,
// patients query the regions they follow and reserve what they find, FAPP
// relays follow every region. It is on when Regions is not empty; every
// field is documented in simulations/scenarios/README.md.
type FAPP struct {
	// Regions are the 2-digit PLZ regions of the scenario; the nodes that
	// are not relays are split among them in contiguous blocks, by the
	// regions' shares of German postal codes.
	Regions []string `toml:"regions"`
	// Nodes take part (empty: all).
	Nodes []string `toml:"nodes"`
	// Relays is how many FAPP relays to draw (from the seed) among the
	// taking part with an IP link; RelayNodes names relays instead (or as
	// well).
	Relays     int      `toml:"relays"`
	RelayNodes []string `toml:"relay_nodes"`
	// RelayLinks gives every taking part node that has an IP link that
	// many libp2p connections to relays (drawn from the seed; default 0),
	// as a daemon that keeps the relays as bootstrap peers: gossip reaches
	// only connected subscribers, so a node none of whose peers follows its
	// region cannot publish into it. RelayLink are those links'
	// properties (as in [[links]]).
	RelayLinks int      `toml:"relay_links"`
	RelayLink  IPParams `toml:"relay_link"`
	// TherapistNodes names the therapists instead of drawing them from
	// the population (each in the region of its node's block; the first
	// children's share of them, in this order, treat children).
	TherapistNodes []string `toml:"therapist_nodes"`
	// Therapists and ChildrenTherapists are the national population (default
	// 37,500 and 7,000, statutory care, end of 2021); Scale is the share of
	// it simulated (default 1). A region gets round(Therapists x its share
	// of postal codes x Scale) therapists, each its own node.
	Therapists         int     `toml:"therapists"`
	ChildrenTherapists int     `toml:"children_therapists"`
	Scale              float64 `toml:"scale"`
	// SprechstundeMinutes per therapist and week (default 100, the legal
	// minimum of a full seat): 25-minute slots up to 100, 50-minute ones
	// above.
	SprechstundeMinutes int `toml:"sprechstunde_minutes"`
	// PlacesPerWeekMin/Max bound each therapist's rate of new therapy places
	// (drawn uniformly, default 0.5..0.8 per week).
	PlacesPerWeekMin float64 `toml:"places_per_week_min"`
	PlacesPerWeekMax float64 `toml:"places_per_week_max"`
	// Verfahren the therapists offer (default all four, weighted as
	// documented) and that patients ask for (default the same).
	TherapistVerfahren []string `toml:"therapist_verfahren"`
	QueryVerfahren     []string `toml:"query_verfahren"`
	// PublishStart and PublishWindow: each therapist sets up its offer at a
	// uniform time in [start, start+window] (default 0 and 1m); the
	// publisher releases it at its next epoch boundary.
	PublishStart  Duration `toml:"publish_start"`
	PublishWindow Duration `toml:"publish_window"`
	// Epoch is the publisher's batching period (default 15m, the daemon's;
	// whole minutes).
	Epoch Duration `toml:"epoch"`
	// QueryRate is patient queries per hour per region (Poisson), from
	// QueryStart (default: the end of the publish window).
	QueryRate  float64  `toml:"query_rate"`
	QueryStart Duration `toml:"query_start"`
	// ReserveShare is the share of successful queries whose patient
	// reserves the first result (default 0.5; 0 reserves nothing: set
	// no_reservations).
	ReserveShare   float64 `toml:"reserve_share"`
	NoReservations bool    `toml:"no_reservations"`
	// ConfirmDelay is how long a therapist takes to answer a request
	// (default 0).
	ConfirmDelay Duration `toml:"confirm_delay"`
	// StampBits is the proof-of-work difficulty of reservation stamps
	// (default fapp.DefaultStampBits).
	StampBits int `toml:"stamp_bits"`
}

// enabled reports whether the scenario has a FAPP workload.
func (f FAPP) enabled() bool { return len(f.Regions) > 0 }

func (f *FAPP) applyDefaults() {
	if !f.enabled() {
		return
	}
	if f.Therapists == 0 {
		f.Therapists = 37_500
	}
	if f.ChildrenTherapists == 0 {
		f.ChildrenTherapists = 7_000
	}
	if f.Scale == 0 {
		f.Scale = 1
	}
	if f.SprechstundeMinutes == 0 {
		f.SprechstundeMinutes = 100
	}
	if f.PlacesPerWeekMin == 0 && f.PlacesPerWeekMax == 0 {
		f.PlacesPerWeekMin, f.PlacesPerWeekMax = 0.5, 0.8
	}
	if len(f.TherapistVerfahren) == 0 {
		f.TherapistVerfahren = allVerfahren()
	}
	if len(f.QueryVerfahren) == 0 {
		f.QueryVerfahren = slices.Clone(f.TherapistVerfahren)
	}
	if f.PublishWindow.Duration == 0 {
		f.PublishWindow.Duration = time.Minute
	}
	if f.Epoch.Duration == 0 {
		f.Epoch.Duration = fapp.DefaultEpoch
	}
	if f.QueryStart.Duration == 0 {
		f.QueryStart.Duration = f.PublishStart.Duration + f.PublishWindow.Duration
	}
	if f.ReserveShare == 0 && !f.NoReservations {
		f.ReserveShare = 0.5
	}
	if f.StampBits == 0 {
		f.StampBits = fapp.DefaultStampBits
	}
}

func allVerfahren() []string {
	return []string{"VERHALTENSTHERAPIE", "TIEFENPSYCHOLOGISCH_FUNDIERT", "ANALYTISCH", "SYSTEMISCH"}
}

// maxSprechstundeMinutes keeps an announce of the week's Sprechstunde (8
// slots of 50 minutes) and a place inside one LoRa frame.
const maxSprechstundeMinutes = 400

func (f FAPP) validate(names map[string]bool) error {
	if !f.enabled() {
		if f.Relays != 0 || len(f.RelayNodes) > 0 || f.QueryRate != 0 || len(f.Nodes) > 0 {
			return bad("fapp.regions", "a FAPP workload needs its regions (2-digit PLZ prefixes such as \"10\")")
		}
		return nil
	}
	for i, r := range f.Regions {
		if _, err := fapp.ParseRegion(r); err != nil {
			return bad(fmt.Sprintf("fapp.regions[%d]", i), "%v", err)
		}
		if slices.Contains(f.Regions[:i], r) {
			return bad(fmt.Sprintf("fapp.regions[%d]", i), "%q listed twice", r)
		}
	}
	if err := checkNames("fapp.nodes", f.Nodes, names); err != nil {
		return err
	}
	if err := checkNames("fapp.relay_nodes", f.RelayNodes, names); err != nil {
		return err
	}
	if err := checkNames("fapp.therapist_nodes", f.TherapistNodes, names); err != nil {
		return err
	}
	for i, n := range f.RelayNodes {
		if len(f.Nodes) > 0 && !slices.Contains(f.Nodes, n) {
			return bad(fmt.Sprintf("fapp.relay_nodes[%d]", i), "%q is not one of fapp.nodes", n)
		}
	}
	for i, n := range f.TherapistNodes {
		switch {
		case len(f.Nodes) > 0 && !slices.Contains(f.Nodes, n):
			return bad(fmt.Sprintf("fapp.therapist_nodes[%d]", i), "%q is not one of fapp.nodes", n)
		case slices.Contains(f.RelayNodes, n):
			return bad(fmt.Sprintf("fapp.therapist_nodes[%d]", i), "%q is a relay", n)
		}
	}
	if err := f.validatePopulation(); err != nil {
		return err
	}
	if err := f.RelayLink.validate("fapp.relay_link"); err != nil {
		return err
	}
	for _, v := range []struct {
		field string
		list  []string
	}{{"fapp.therapist_verfahren", f.TherapistVerfahren}, {"fapp.query_verfahren", f.QueryVerfahren}} {
		for i, s := range v.list {
			if _, err := fapp.ParseVerfahren(s); err != nil {
				return bad(fmt.Sprintf("%s[%d]", v.field, i), "%v", err)
			}
		}
	}
	return f.validateTiming()
}

func checkNames(field string, list []string, names map[string]bool) error {
	for i, n := range list {
		if !names[n] {
			return bad(fmt.Sprintf("%s[%d]", field, i), "unknown node %q", n)
		}
		if slices.Contains(list[:i], n) {
			return bad(fmt.Sprintf("%s[%d]", field, i), "%q listed twice", n)
		}
	}
	return nil
}

func (f FAPP) validatePopulation() error {
	switch {
	case f.Relays < 0:
		return bad("fapp.relays", "%d is negative", f.Relays)
	case f.RelayLinks < 0 || f.RelayLinks > f.Relays+len(f.RelayNodes):
		return bad("fapp.relay_links", "%d not in 0..the number of relays (%d)", f.RelayLinks, f.Relays+len(f.RelayNodes))
	case f.Therapists < 0 || f.Therapists > 1_000_000:
		return bad("fapp.therapists", "%d not in 0..1000000", f.Therapists)
	case f.ChildrenTherapists < 0 || f.ChildrenTherapists > f.Therapists:
		return bad("fapp.children_therapists", "%d not in 0..therapists (%d)", f.ChildrenTherapists, f.Therapists)
	case !(f.Scale > 0 && f.Scale <= 1):
		return bad("fapp.scale", "%v not in (0, 1]", f.Scale)
	case f.SprechstundeMinutes < 50 || f.SprechstundeMinutes > maxSprechstundeMinutes || f.SprechstundeMinutes%25 != 0:
		return bad("fapp.sprechstunde_minutes", "%d: want a multiple of 25 in 50..%d (50 on a half seat, 100 on a full one)", f.SprechstundeMinutes, maxSprechstundeMinutes)
	case !(f.PlacesPerWeekMin >= 0 && f.PlacesPerWeekMin <= f.PlacesPerWeekMax && f.PlacesPerWeekMax <= 7):
		return bad("fapp.places_per_week_min", "%v..%v: want 0 <= min <= max <= 7", f.PlacesPerWeekMin, f.PlacesPerWeekMax)
	}
	return nil
}

func (f FAPP) validateTiming() error {
	switch {
	case f.PublishStart.Duration < 0:
		return bad("fapp.publish_start", "%v is negative", f.PublishStart)
	case f.PublishWindow.Duration < 0:
		return bad("fapp.publish_window", "%v is negative", f.PublishWindow)
	case f.Epoch.Duration < time.Minute || f.Epoch.Duration%time.Minute != 0:
		return bad("fapp.epoch", "%v: want whole minutes, at least 1m", f.Epoch)
	case f.QueryRate < 0 || f.QueryRate > 1e6:
		return bad("fapp.query_rate", "%v not in 0..1000000 queries per hour and region", f.QueryRate)
	case f.QueryStart.Duration < 0:
		return bad("fapp.query_start", "%v is negative", f.QueryStart)
	case !(f.ReserveShare >= 0 && f.ReserveShare <= 1):
		return bad("fapp.reserve_share", "%v not in 0..1", f.ReserveShare)
	case f.NoReservations && f.ReserveShare != 0:
		return bad("fapp.reserve_share", "%v with no_reservations", f.ReserveShare)
	case f.ConfirmDelay.Duration < 0:
		return bad("fapp.confirm_delay", "%v is negative", f.ConfirmDelay)
	case f.StampBits < 1 || f.StampBits > 32:
		return bad("fapp.stamp_bits", "%d not in 1..32", f.StampBits)
	}
	return nil
}
