package sim

import (
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"meshd.dev/meshd/protocol"
)

const fappCity = "../scenarios/fapp_city.toml"

// fappLine is therapist t - relay r1 - relay r2 - patient p on IP links of
// exactly 10 ms (no jitter, no hop delay), all in region 10: an announce
// released at the 1-minute boundary reaches r1 after 10 ms, r2 after 20 ms
// and p after 30 ms.
const fappLine = `name = "fapp_line"
seed = 1
duration = "3m"
[engine]
announce_interval = "24h"
[gossip]
hop_delay = "0s"
[[nodes]]
name = "t"
[[nodes]]
name = "r1"
[[nodes]]
name = "r2"
[[nodes]]
name = "p"
[[links]]
a = "t"
b = "r1"
latency = "10ms"
[[links]]
a = "r1"
b = "r2"
latency = "10ms"
[[links]]
a = "r2"
b = "p"
latency = "10ms"
[fapp]
regions = ["10"]
relay_nodes = ["r1", "r2"]
therapist_nodes = ["t"]
epoch = "1m"
publish_window = "1s"
stamp_bits = 8
`

func runFAPP(t *testing.T, doc string, sets ...string) *Sim {
	t.Helper()
	sc, err := Parse([]byte(doc), sets)
	if err != nil {
		t.Fatal(err)
	}
	return runScenario(t, sc, nil)
}

// TestFAPPSpreadHandChecked: the spread figures of the line are the hop
// latencies, and the traffic is the three gossip hops of one channel frame.
func TestFAPPSpreadHandChecked(t *testing.T) {
	s := runFAPP(t, fappLine)
	f := s.Summary().FAPP
	if f == nil || f.Announces != 1 || f.Relays != 2 || f.Therapists != 1 || f.Patients != 1 {
		t.Fatalf("population or announces: %+v", f)
	}
	if f.RelayReach != 1 || f.FollowerReach != 1 {
		t.Errorf("reach: relays %v, followers %v, want 1 and 1", f.RelayReach, f.FollowerReach)
	}
	want := LatencyStats{N: 2, P50: 0.01, P90: 0.02, P99: 0.02}
	if f.RelayLatency != want {
		t.Errorf("relay latency %+v, want %+v", f.RelayLatency, want)
	}
	if f.Relay50.P50 != 0.01 || f.Relay99.P50 != 0.02 || f.Relay99.Max != 0.02 || f.Relay99.Share != 1 {
		t.Errorf("time to 50 %% of relays %+v, to 99 %% %+v; want 0.01 and 0.02", f.Relay50, f.Relay99)
	}
	if f.FollowerLatency.N != 3 || f.Follower99.P50 != 0.03 {
		t.Errorf("followers: latency %+v, time to 99 %% %+v; want 3 deliveries and 0.03", f.FollowerLatency, f.Follower99)
	}
	size := s.fapp.ann[0].size
	if size != int(f.AnnounceBytesMean) || size > 231 {
		t.Errorf("announce of %d bytes, mean %v (one LoRa frame holds 231)", size, f.AnnounceBytesMean)
	}
	if f.GossipMessages != 3 || f.GossipBytes != uint64(3*(size+protocol.ChannelOverhead)) {
		t.Errorf("gossip: %d messages, %d bytes; want 3 hops of a %d-byte frame", f.GossipMessages, f.GossipBytes, size+protocol.ChannelOverhead)
	}
}

// TestFAPPOutputs: the per-announce and per-node rows of the line.
func TestFAPPOutputs(t *testing.T) {
	s := runFAPP(t, fappLine)
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	rows := readCSVFile(t, filepath.Join(dir, "fapp_announces.csv"))
	size := strconv.Itoa(s.fapp.ann[0].size)
	want := []string{"1", "t", "10", "1", "60.000", size, "2", "1.0000", "0.010", "0.020", "3", "1.0000", "0.030"}
	if len(rows) != 2 || !slices.Equal(rows[1], want) {
		t.Errorf("fapp_announces.csv: %q, want the row %q", rows, want)
	}
	nodes := readCSVFile(t, filepath.Join(dir, "nodes.csv"))
	roles := map[string]string{}
	for _, r := range nodes[1:] {
		roles[r[1]] = strings.Join(r[len(r)-3:], " ")
	}
	for name, w := range map[string]string{"t": "therapist 10 1", "r1": "relay all 1", "r2": "relay all 1", "p": "patient 10 1"} {
		if roles[name] != w {
			t.Errorf("nodes.csv %s: %q, want %q", name, roles[name], w)
		}
	}
	if rows := readCSVFile(t, filepath.Join(dir, "fapp_reservations.csv")); len(rows) != 1 {
		t.Errorf("fapp_reservations.csv: %d rows, want the header only", len(rows))
	}
}

func TestTimeTo(t *testing.T) {
	lat := []float64{1, 2, 3}
	for _, tc := range []struct {
		targets int
		p       float64
		want    float64
		ok      bool
	}{{3, 0.99, 3, true}, {3, 0.5, 2, true}, {4, 0.99, 0, false}, {4, 0.5, 2, true}, {100, 0.01, 1, true}, {0, 0.5, 0, false}} {
		if got, ok := timeTo(lat, tc.targets, tc.p); got != tc.want || ok != tc.ok {
			t.Errorf("timeTo(%d targets, %v) = %v, %v; want %v, %v", tc.targets, tc.p, got, ok, tc.want, tc.ok)
		}
	}
}

// TestFAPPQuerySuccess: with therapists of one Verfahren, patients asking
// for another find nothing (and nothing exists); asking for the offered one
// they find what exists, reserve it, and get an answer back.
func TestFAPPQuerySuccess(t *testing.T) {
	base := fappLine + "query_rate = 600\nreserve_share = 1.0\ntherapist_verfahren = [\"ANALYTISCH\"]\n"
	none := runFAPP(t, base+"query_verfahren = [\"SYSTEMISCH\"]\n").Summary().FAPP
	if none.Queries < 5 || none.Found != 0 || none.Success != 0 || none.Existing != 0 || none.Reservations != 0 {
		t.Errorf("no therapist matches: %d queries, %d found (success %v), %d with a match, %d reservations",
			none.Queries, none.Found, none.Success, none.Existing, none.Reservations)
	}
	some := runFAPP(t, base+"query_verfahren = [\"ANALYTISCH\"]\n").Summary().FAPP
	if some.Queries < 5 || some.Found == 0 || some.Recall != 1 || some.Success <= 0 {
		t.Errorf("a therapist matches: %d queries, %d found, success %v, recall %v (the patient follows the region: want 1)",
			some.Queries, some.Found, some.Success, some.Recall)
	}
	if some.Reservations != some.Found || some.Confirmed == 0 || some.Confirmed+some.Declined+some.Unanswered != some.Reservations {
		t.Errorf("reservations %d (found %d): %d confirmed, %d declined, %d unanswered",
			some.Reservations, some.Found, some.Confirmed, some.Declined, some.Unanswered)
	}
	// Three 10 ms links each way at least.
	if some.RoundTrip.N == 0 || some.RoundTrip.P50 < 0.06 {
		t.Errorf("round trip %+v, want at least 0.06 s", some.RoundTrip)
	}
}

// TestFAPPCity runs the city scenario twice: same seed, same trace; and
// checks its figures against floors measured when it was written (relay
// reach 0.90: the announces that miss are those of radio therapists
// released in the same instant as every other, lost to collisions).
func TestFAPPCity(t *testing.T) {
	sc := load(t, fappCity)
	a := runScenario(t, sc, nil).Summary()
	b := runScenario(t, load(t, fappCity), nil).Summary()
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatalf("same seed, trace hashes %s and %s", a.TraceSHA256, b.TraceSHA256)
	}
	f := a.FAPP
	if a.EngineErrors != 0 || f.Dropped != 0 {
		t.Errorf("%d engine errors, %d FAPP messages dropped", a.EngineErrors, f.Dropped)
	}
	if f.Therapists < 30 || f.ChildrenTherapists == 0 || f.Announces < f.Therapists || f.Queries < 100 || f.Reservations == 0 {
		t.Errorf("workload too small: %+v", f)
	}
	if f.RelayReach < 0.85 || f.Success < 0.6 || f.Confirmed == 0 || f.LoRaFrames == 0 || f.GossipMessages == 0 {
		t.Errorf("below the floors: relay reach %v, query success %v, %d confirmed, %d LoRa frames, %d gossip messages",
			f.RelayReach, f.Success, f.Confirmed, f.LoRaFrames, f.GossipMessages)
	}
}

func TestFAPPSeedChangesTrace(t *testing.T) {
	a := runFAPP(t, fappLine+"query_rate = 600\n").Summary()
	b := runFAPP(t, fappLine+"query_rate = 600\n", "seed=2").Summary()
	if a.TraceSHA256 == b.TraceSHA256 {
		t.Error("different seeds gave the same trace hash")
	}
}

func TestBadFAPP(t *testing.T) {
	base := "seed = 1\nduration = \"1m\"\n[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n[[links]]\na = \"a\"\nb = \"b\"\n[fapp]\n"
	for _, tc := range []struct{ doc, want string }{
		{base + "relays = 1\n", "fapp.regions: a FAPP workload needs"},
		{base + "regions = [\"1\"]\n", "fapp.regions[0]"},
		{base + "regions = [\"00\"]\n", "fapp.regions[0]"},
		{base + "regions = [\"10\", \"10\"]\n", "fapp.regions[1]: \"10\" listed twice"},
		{base + "regions = [\"10\"]\nrelay_nodes = [\"zz\"]\n", "fapp.relay_nodes[0]"},
		{base + "regions = [\"10\"]\ntherapist_nodes = [\"a\"]\nrelay_nodes = [\"a\"]\n", "fapp.therapist_nodes[0]: \"a\" is a relay"},
		{base + "regions = [\"10\"]\nscale = 1.5\n", "fapp.scale"},
		{base + "regions = [\"10\"]\nchildren_therapists = 50000\n", "fapp.children_therapists"},
		{base + "regions = [\"10\"]\nsprechstunde_minutes = 30\n", "fapp.sprechstunde_minutes"},
		{base + "regions = [\"10\"]\nplaces_per_week_min = 0.9\nplaces_per_week_max = 0.5\n", "fapp.places_per_week_min"},
		{base + "regions = [\"10\"]\ntherapist_verfahren = [\"HYPNOSE\"]\n", "fapp.therapist_verfahren[0]"},
		{base + "regions = [\"10\"]\nepoch = \"90s\"\n", "fapp.epoch"},
		{base + "regions = [\"10\"]\nquery_rate = -1.0\n", "fapp.query_rate"},
		{base + "regions = [\"10\"]\nreserve_share = 2.0\n", "fapp.reserve_share"},
		{base + "regions = [\"10\"]\nstamp_bits = 40\n", "fapp.stamp_bits"},
		{base + "regions = [\"10\"]\nrelays = 1\nrelay_links = 2\n", "fapp.relay_links"},
		{base + "regions = [\"10\"]\nrelay_link = { loss = 2.0 }\n", "fapp.relay_link.loss"},
	} {
		_, err := Parse([]byte(tc.doc), nil)
		if err == nil || !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc[len(base):], err, tc.want)
		}
	}
	// Checked when the network is built: more therapists or relays than nodes.
	for _, tc := range []struct{ set, want string }{
		{"fapp.relays=3", "fapp.relays: 3 relays"},
		{"fapp.scale=1.0", "fapp.scale: region 10 gets"},
	} {
		sc, err := Parse([]byte(base+"regions = [\"10\"]\n"), []string{tc.set})
		if err == nil {
			_, err = New(sc, nil)
		}
		if err == nil || !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.set, err, tc.want)
		}
	}
}

// TestFAPPRegionsSeparate: with two regions, the patient (region 12) is no
// member of region 10's topic: it gets none of its gossip and indexes
// nothing, while both relays index the announce.
func TestFAPPRegionsSeparate(t *testing.T) {
	s := runFAPP(t, strings.Replace(fappLine, `regions = ["10"]`, `regions = ["10", "12"]`, 1))
	f := s.fapp
	if got := []string{f.nodes[0].region.String(), f.nodes[3].region.String()}; !slices.Equal(got, []string{"10", "12"}) {
		t.Fatalf("regions of t and p: %v, want 10 and 12", got)
	}
	p := s.byName["p"]
	if n := f.nodes[p.idx].index.Len(); n != 0 || p.stats.GossipReceived != 0 {
		t.Errorf("patient of region 12: %d announces held, %d gossip messages; want none", n, p.stats.GossipReceived)
	}
	for _, r := range []string{"r1", "r2"} {
		if n := f.nodes[s.byName[r].idx].index.Len(); n != 1 {
			t.Errorf("relay %s holds %d announces, want 1", r, n)
		}
	}
	if sum := s.Summary().FAPP; sum.FollowerReach != 1 || sum.FollowerLatency.N != 2 {
		t.Errorf("followers of region 10 are the two relays: reach %v, %d deliveries", sum.FollowerReach, sum.FollowerLatency.N)
	}
}

func TestApportion(t *testing.T) {
	for _, tc := range []struct {
		n    int
		w    []float64
		want []int
	}{{10, []float64{1, 1}, []int{5, 5}}, {3, []float64{1, 1}, []int{2, 1}}, {7, []float64{1, 2, 4}, []int{1, 2, 4}}, {1, []float64{1, 3}, []int{0, 1}}, {0, []float64{2}, []int{0}}} {
		if got := apportion(tc.n, tc.w); !slices.Equal(got, tc.want) {
			t.Errorf("apportion(%d, %v) = %v, want %v", tc.n, tc.w, got, tc.want)
		}
	}
}
