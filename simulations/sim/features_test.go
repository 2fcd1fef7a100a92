package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerifyCacheSameTrace: sharing one announce verification cache among
// the engines is a speed-up only: the trace hash is the same without it.
func TestVerifyCacheSameTrace(t *testing.T) {
	for _, path := range []string{quickstart, "testdata/small.toml", "testdata/restart.toml", "testdata/gml.toml"} {
		sc := load(t, path)
		with, err := NewWith(sc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		with.Run(nil)
		without, err := NewWith(load(t, path), Options{NoVerifyCache: true})
		if err != nil {
			t.Fatal(err)
		}
		without.Run(nil)
		a, b := with.Summary(), without.Summary()
		if a.TraceSHA256 != b.TraceSHA256 || a.Events != b.Events {
			t.Errorf("%s: with the cache %s (%d events), without %s (%d events)", path, a.TraceSHA256, a.Events, b.TraceSHA256, b.Events)
		}
		if with.vcache.hits == 0 || without.vcache != nil {
			t.Errorf("%s: cache hits %d", path, with.vcache.hits)
		}
	}
}

func parse(t *testing.T, doc string, sets ...string) *Scenario {
	t.Helper()
	sc, err := Parse([]byte(doc), sets)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

const ipLine = `seed = 3
duration = "10m"
[[topology]]
kind = "grid"
n = 5
cols = 5
spacing = 100.0
prefix = "n"
link = "ip"
ip = { latency = "10ms" }
`

// TestHops: messages.csv reports the hop count each message arrived with.
func TestHops(t *testing.T) {
	s := runScenario(t, parse(t, ipLine+`[traffic]
rate = 0.02
start = "1m"
senders = ["n0"]
destinations = ["n4", "n1"]
`), nil)
	sum := s.Summary()
	if sum.Delivered == 0 || sum.Delivered != sum.Sent {
		t.Fatalf("delivered %d of %d", sum.Delivered, sum.Sent)
	}
	for _, m := range s.msgs {
		want := map[string]uint8{"n4": 3, "n1": 0}[m.dst.name]
		if m.hops != want {
			t.Errorf("message %d to %s: %d hops, want %d", m.ref, m.dst.name, m.hops, want)
		}
	}
	if sum.HopsMax != 3 || sum.HopsMean <= 0 || sum.HopsMean >= 3 {
		t.Errorf("hops mean %v max %d", sum.HopsMean, sum.HopsMax)
	}
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	rows := readCSVFile(t, filepath.Join(dir, "messages.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if _, ok := col["hops"]; !ok {
		t.Fatalf("messages.csv header %v has no hops", rows[0])
	}
	for _, r := range rows[1:] {
		if want := map[string]string{"n4": "3", "n1": "0"}[r[col["destination"]]]; r[col["hops"]] != want {
			t.Errorf("row %v: hops %s, want %s", r, r[col["hops"]], want)
		}
	}
}

func readCSVFile(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

const ipRing = `seed = 3
duration = "20m"
[[topology]]
kind = "ring"
n = 8
prefix = "n"
link = "ip"
ip = { latency = "10ms" }
`

// TestHotspot: a share of the messages goes to a few hot destinations,
// drawn from the seed.
func TestHotspot(t *testing.T) {
	doc := ipRing + `[traffic]
pattern = "hotspot"
hotspots = 2
hotspot_share = 0.9
rate = 0.05
start = "1m"
`
	s := runScenario(t, parse(t, doc), nil)
	sum := s.Summary()
	if len(sum.Hotspots) != 2 || sum.Hotspots[0] == sum.Hotspots[1] {
		t.Fatalf("hotspots %v", sum.Hotspots)
	}
	hot := 0
	for _, m := range s.msgs {
		if m.dst.name == sum.Hotspots[0] || m.dst.name == sum.Hotspots[1] {
			hot++
		}
	}
	// 90 % go to the hot pair, plus their uniform share of the rest.
	if share := float64(hot) / float64(len(s.msgs)); len(s.msgs) < 200 || share < 0.85 {
		t.Fatalf("%d of %d messages to the hot destinations", hot, len(s.msgs))
	}
	if sum.DeliveryRatio < 0.95 {
		t.Fatalf("delivery ratio %v", sum.DeliveryRatio)
	}
	again := runScenario(t, parse(t, doc), nil).Summary()
	if again.TraceSHA256 != sum.TraceSHA256 || strings.Join(again.Hotspots, ",") != strings.Join(sum.Hotspots, ",") {
		t.Fatal("hotspot run not deterministic")
	}
	named := runScenario(t, parse(t, strings.Replace(doc, "hotspots = 2", `hotspot_nodes = ["n3"]`, 1)), nil)
	toN3 := 0
	for _, m := range named.msgs {
		if m.dst.name == "n3" {
			toN3++
		}
	}
	if toN3 < len(named.msgs)*8/10 {
		t.Errorf("%d of %d messages to the named hotspot n3", toN3, len(named.msgs))
	}
	if h := named.Summary().Hotspots; len(h) != 1 || h[0] != "n3" {
		t.Fatalf("named hotspots %v", h)
	}
}

// TestAllToAll: every sender sends exactly one message to every other
// destination per round.
func TestAllToAll(t *testing.T) {
	s := runScenario(t, parse(t, ipRing+`[traffic]
pattern = "all-to-all"
rounds = 2
rate = 0.2
start = "1m"
`), nil)
	pairs := map[[2]string]int{}
	for _, m := range s.msgs {
		pairs[[2]string{m.src.name, m.dst.name}]++
	}
	if len(s.msgs) != 8*7*2 || len(pairs) != 8*7 {
		t.Fatalf("%d messages over %d pairs", len(s.msgs), len(pairs))
	}
	for p, c := range pairs {
		if c != 2 || p[0] == p[1] {
			t.Fatalf("pair %v: %d messages", p, c)
		}
	}
	if sum := s.Summary(); sum.DeliveryRatio != 1 {
		t.Fatalf("delivered %d of %d", sum.Delivered, sum.Sent)
	}
}

// TestChurn: MTBF/MTTR churn crashes and restarts nodes, deterministically
// from the seed, only the listed ones, and custody still delivers.
func TestChurn(t *testing.T) {
	doc := ipRing + `[traffic]
rate = 0.01
start = "1m"
[engine]
retry_base = "20s"
retry_max = "1m"
[churn]
mtbf = "5m"
mttr = "1m"
nodes = ["n1", "n2", "n5"]
start = "2m"
stop = "15m"
`
	var tr1, tr2 bytes.Buffer
	a := runScenario(t, parse(t, doc), NewTracer(&tr1))
	b := runScenario(t, parse(t, doc), NewTracer(&tr2))
	sa, sb := a.Summary(), b.Summary()
	if sa.TraceSHA256 != sb.TraceSHA256 || !bytes.Equal(tr1.Bytes(), tr2.Bytes()) {
		t.Fatal("same seed, different churn runs")
	}
	if sa.Crashes < 3 || sa.DowntimeS <= 0 {
		t.Fatalf("%d crashes, %v s down", sa.Crashes, sa.DowntimeS)
	}
	for _, n := range a.nodes {
		listed := n.name == "n1" || n.name == "n2" || n.name == "n5"
		if !listed && n.stats.Crashes != 0 {
			t.Errorf("%s crashed but is not in churn.nodes", n.name)
		}
		if listed && n.stats.Crashes == 0 {
			t.Errorf("%s never crashed in 13 minutes with a 5-minute MTBF", n.name)
		}
		if !n.up && n.stats.Downtime == 0 {
			t.Errorf("%s down without downtime", n.name)
		}
	}
	if strings.Count(tr1.String(), `"k":"down"`) != int(sa.Crashes) {
		t.Fatal("trace and counters disagree on crashes")
	}
	// Failures only between churn.start and churn.stop.
	for _, line := range strings.Split(tr1.String(), "\n") {
		if !strings.Contains(line, `"k":"down"`) {
			continue
		}
		var ev struct {
			T int64 `json:"t"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if at := time.Duration(ev.T); at < 2*time.Minute || at >= 15*time.Minute {
			t.Errorf("a failure at %v, outside churn.start..churn.stop", at)
		}
	}
	c := runScenario(t, parse(t, doc, "seed=4"), nil).Summary()
	if c.TraceSHA256 == sa.TraceSHA256 {
		t.Fatal("another seed, same churn run")
	}
	if sa.DeliveryRatio < 0.8 {
		t.Fatalf("delivery ratio %v under churn", sa.DeliveryRatio)
	}
	// Churn draws from its own streams: the first message of every sender
	// is the same with and without churn.
	quiet := runScenario(t, parse(t, ipRing+"[traffic]\nrate = 0.01\nstart = \"1m\"\n"), nil)
	first := func(s *Sim) map[string]string {
		m := map[string]string{}
		for _, msg := range s.msgs {
			if _, ok := m[msg.src.name]; !ok && msg.sent.Before(Epoch.Add(2*time.Minute)) {
				m[msg.src.name] = msg.dst.name + msg.sent.String()
			}
		}
		return m
	}
	fa, fq := first(a), first(quiet)
	if len(fq) == 0 || len(fa) != len(fq) {
		t.Fatalf("first messages: %v and %v", fa, fq)
	}
	for k, v := range fq {
		if fa[k] != v {
			t.Fatalf("churn shifted the workload of %s: %s and %s", k, fa[k], v)
		}
	}
}

// TestGMLImport: an IP backbone and a radio village from GML files.
func TestGMLImport(t *testing.T) {
	sc := load(t, "testdata/gml.toml")
	if len(sc.Nodes) != 10 || len(sc.Links) != 7 || len(sc.Topology) != 0 {
		t.Fatalf("%d nodes, %d links, %d topologies left", len(sc.Nodes), len(sc.Links), len(sc.Topology))
	}
	names := map[string]bool{}
	for _, n := range sc.Nodes {
		names[n.Name] = true
	}
	for _, w := range []string{"bb-Amsterdam", "bb-5", "gw", "v3"} {
		if !names[w] {
			t.Errorf("no node %s in %v", w, names)
		}
	}
	if n := sc.Nodes[8]; n.Name != "v2" || *n.X != 960 || *n.Y != 1045 || !n.LoRa {
		t.Errorf("v2: %+v", n)
	}
	s := runScenario(t, sc, nil)
	sum := s.Summary()
	if sum.RadioNodes != 4 || sum.IPLinks != 7 || sum.Sent == 0 || sum.DeliveryRatio < 0.8 {
		t.Fatalf("summary %+v", sum)
	}
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	if h := runScenario(t, load(t, filepath.Join(dir, "scenario.toml")), nil).Summary().TraceSHA256; h != sum.TraceSHA256 {
		t.Fatal("the resolved scenario replays differently")
	}
}

func TestGMLErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"", "no graph"},
		{"graph [\n node [ id 1 ]\n", "line 3: unexpected end"},
		{"graph [ ]\n]", "line 2: ] without"},
		{"graph [ node [ label \"a\" ] ]", "line 1: node without an id"},
		{"graph [\nnode [ id 1 ]\nnode [ id 1 ]\n]", "line 3: node id 1 already used on line 2"},
		{"graph [\nnode [ id 1 label \"a\" ]\nnode [ id 2 label \"a\" ]\n]", "line 3: node label \"a\" already used"},
		{"graph [\nnode [ id 1 ]\nedge [ source 1 target 2 ]\n]", "line 3: edge target 2: no node"},
		{"graph [\nnode [ id 1 ]\nedge [ source 1 target 1 ]\n]", "line 3: edge from node 1 to itself"},
		{"graph [\nnode [ id 1 ]\nnode [ id 2 ]\nedge [ source 1 target 2 ]\n\nedge [ source 2 target 1 ]\n]", "line 6: edge between 2 and 1 already given on line 4"},
		{"graph [\nnode [ id 1 ]\nedge [ target 1 ]\n]", "line 3: edge without a source"},
		{"graph [\nnode [ id 1.5 ]\n]", "line 2: node id is not an integer"},
		{"graph [\nnode [ id 1 label 7 ]\n]", "line 2: node label is not"},
		{"graph [\n\n node [ id 0x10 ]\n]", "line 3: key id: \"0x10\" is not a number"},
		{"graph [\nnode [ id 1 label \"unclosed ]\n]", "line 2: the string of key label is not closed"},
		{"graph [ ] graph [ ]", "a second graph"},
		{"graph [\n 7 ]", "line 2: expected a key"},
		{"graph [ node [ id 1 graphics [ x 1 ] ] ]", "graphics has x or y but not both"},
		{"graph 3", "graph is not a [ list ]"},
		{"graph [ directed 2 ]", "directed must be 0 or 1"},
		{strings.Repeat("a [ ", 40) + strings.Repeat("] ", 40), "nested more than"},
	} {
		_, err := ParseGML([]byte(tc.doc))
		if err == nil || !errors.Is(err, ErrGML) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
	// In a scenario, the error names the field and the file's line.
	doc, err := os.ReadFile("testdata/gml.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"backbone.gml", "village.gml"} {
		b, _ := os.ReadFile(filepath.Join("testdata", f))
		if f == "village.gml" {
			b = bytes.Replace(b, []byte("graphics [ x 50 y 20.5 ]"), nil, 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ old, new, dir, want string }{
		{`file = "backbone.gml"`, `file = "missing.gml"`, "testdata", "topology[0].file"},
		{`file = "backbone.gml"`, "", "testdata", "topology[0].file: a gml topology needs a file"},
		{`link = "lora"`, `link = "radio"`, "testdata", "topology[1].link"},
		{"village.gml", "village.gml", dir, "topology[1].file: " + filepath.Join(dir, "village.gml") + ": line 3: node 2 is a radio node without a position"},
		{`link = "lora"`, `link = "lora"` + "\nnodes_file = \"x.csv\"", "testdata", "topology[1].nodes_file"},
		{`kind = "gml"`, `kind = "grid"`, "testdata", "topology[0].file: only a gml topology"},
	} {
		_, err := ParseDir(bytes.Replace(doc, []byte(tc.old), []byte(tc.new), 1), nil, tc.dir)
		if err == nil || !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
}

func TestBadScenariosNewFields(t *testing.T) {
	base := "seed = 1\nduration = \"1m\"\n[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n"
	for _, tc := range []struct{ doc, want string }{
		{base + "[traffic]\npattern = \"zipf\"\n", "traffic.pattern"},
		{base + "[traffic]\nlocal_radius_m = 100.0\n", "traffic.local_radius_m: only with pattern"},
		{base + "[traffic]\npattern = \"local\"\n", "traffic.local_radius_m: 0 not in"},
		{base + "[traffic]\npattern = \"local\"\nlocal_radius_m = -1.0\n", "traffic.local_radius_m: -1 not in"},
		{base + "[traffic]\nhotspots = 1\n", "traffic.hotspots: only with pattern"},
		{base + "[traffic]\npattern = \"hotspot\"\nrate = 1.0\n", "traffic.hotspots: a hotspot workload needs"},
		{base + "[traffic]\npattern = \"hotspot\"\nhotspots = 3\n", "traffic.hotspots: 3 not in 1..2"},
		{base + "[traffic]\npattern = \"hotspot\"\nhotspots = 1\nhotspot_share = 1.5\n", "traffic.hotspot_share"},
		{base + "[traffic]\npattern = \"hotspot\"\nhotspot_nodes = [\"zz\"]\n", "traffic.hotspot_nodes[0]"},
		{base + "[traffic]\npattern = \"hotspot\"\nhotspot_nodes = [\"a\"]\ndestinations = [\"b\"]\n", "not one of traffic.destinations"},
		{base + "[traffic]\npattern = \"all-to-all\"\n", "traffic.rate: an all-to-all workload"},
		{base + "[traffic]\nrounds = 2\n", "traffic.rounds: only with"},
		{base + "[traffic]\npattern = \"all-to-all\"\nrate = 1.0\nrounds = -1\n", "traffic.rounds"},
		{base + "[churn]\nmttr = \"1m\"\n", "churn.mtbf"},
		{base + "[churn]\nmtbf = \"1m\"\n", "churn.mttr"},
		{base + "[churn]\nmtbf = \"1m\"\nmttr = \"-1m\"\n", "churn.mttr"},
		{base + "[churn]\nmtbf = \"1ns\"\nmttr = \"1m\"\n", "churn.mtbf: 1ns"},
		{base + "[churn]\nmtbf = \"1m\"\nmttr = \"1m\"\nnodes = [\"zz\"]\n", "churn.nodes[0]"},
		{base + "[churn]\nmtbf = \"1m\"\nmttr = \"1m\"\nstart = \"5m\"\nstop = \"2m\"\n", "churn.stop"},
		{base + "[churn]\nmtbf = \"1m\"\nmttr = \"1m\"\nrate = 2\n", "churn.rate"},
		{base + "[engine]\nip_advert_radius = 300\n", "engine.ip_advert_radius"},
		{base + "[engine]\nretry_base = \"-1s\"\n", "engine.retry_base"},
	} {
		_, err := Parse([]byte(tc.doc), nil)
		if err == nil || !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc[len(base):], err, tc.want)
		}
	}
}
