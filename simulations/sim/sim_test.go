package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const quickstart = "../scenarios/quickstart.toml"

func load(t *testing.T, path string, sets ...string) *Scenario {
	t.Helper()
	sc, err := Load(path, sets)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func runScenario(t *testing.T, sc *Scenario, tr *Tracer) *Sim {
	t.Helper()
	s, err := New(sc, tr)
	if err != nil {
		t.Fatal(err)
	}
	s.Run(nil)
	return s
}

func TestDeterminism(t *testing.T) {
	var trace1, trace2 bytes.Buffer
	a := runScenario(t, load(t, quickstart), NewTracer(&trace1)).Summary()
	b := runScenario(t, load(t, quickstart), NewTracer(&trace2)).Summary()
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatalf("same seed, different trace hashes: %s and %s", a.TraceSHA256, b.TraceSHA256)
	}
	if !bytes.Equal(trace1.Bytes(), trace2.Bytes()) {
		t.Fatal("same seed, different traces")
	}
	if a.TraceEvents < 1000 {
		t.Fatalf("only %d trace events", a.TraceEvents)
	}
	c := runScenario(t, load(t, quickstart, "seed=2"), nil).Summary()
	if c.TraceSHA256 == a.TraceSHA256 {
		t.Fatal("different seeds gave the same trace hash")
	}
}

func TestQuickstartDelivers(t *testing.T) {
	sum := runScenario(t, load(t, quickstart), nil).Summary()
	if sum.Sent < 10 {
		t.Fatalf("only %d messages sent", sum.Sent)
	}
	if sum.DeliveryRatio < 0.7 {
		t.Fatalf("delivery ratio %.2f (%d of %d)", sum.DeliveryRatio, sum.Delivered, sum.Sent)
	}
	if sum.EngineErrors != 0 {
		t.Fatalf("%d engine errors", sum.EngineErrors)
	}
	if sum.RadioNodes != 9 || sum.Nodes != 12 {
		t.Fatalf("nodes %d, radio nodes %d", sum.Nodes, sum.RadioNodes)
	}
}

func TestBadScenarios(t *testing.T) {
	base := "seed = 1\nduration = \"1m\"\n[[nodes]]\nname = \"a\"\n"
	for _, tc := range []struct {
		name, doc string
		sets      []string
		want      []string
	}{
		{"unknown key", base + "colour = \"red\"\n", nil, []string{"line 5", "colour"}},
		{"unknown nested key", base + "[radio]\nsf = 9\nspreading = 9\n", nil, []string{"line 7", "radio.spreading"}},
		{"SF 13", base + "[radio]\nsf = 13\n", nil, []string{"radio.sf", "13"}},
		{"SF 13 by --set", base, []string{"radio.sf=13"}, []string{"radio.sf", "13"}},
		{"radio node without position", base + "[[nodes]]\nname = \"r\"\nlora = true\nx = 1.0\n", nil, []string{"nodes[1].x", "position"}},
		{"negative rate", base + "[traffic]\nrate = -1.0\n", nil, []string{"traffic.rate", "negative"}},
		{"no duration", "seed = 1\n[[nodes]]\nname = \"a\"\n", nil, []string{"duration"}},
		{"coding rate", base + "[radio]\ncr = 1\n", nil, []string{"radio.cr"}},
		{"unknown link node", base + "[[links]]\na = \"a\"\nb = \"zz\"\n", nil, []string{"links[0].b", "zz"}},
		{"bad duration", base + "[engine]\nretry_base = \"soon\"\n", nil, []string{"line 6", "retry_base"}},
		{"outside EU868", base + "[radio]\nfrequency_hz = 915000000\n", nil, []string{"radio.frequency_hz"}},
		{"bad topology", base + "[[topology]]\nkind = \"star\"\nn = 3\nlink = \"ip\"\n", nil, []string{"topology[0].kind"}},
		{"bad dynamics node", base + "[[dynamics]]\nat = \"1s\"\naction = \"down\"\nnodes = [\"zz\"]\n", nil, []string{"dynamics[0].nodes[0]", "zz"}},
		{"bad dynamics action", base + "[[dynamics]]\nat = \"1s\"\naction = \"explode\"\nnodes = [\"a\"]\n", nil, []string{"dynamics[0].action"}},
		{"bad dynamics link", base + "[[dynamics]]\nat = \"1s\"\naction = \"partition\"\nlinks = [\"a-b\"]\n", nil, []string{"dynamics[0].links[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), tc.sets)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrScenario) {
				t.Errorf("error %v is not ErrScenario", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := Load("testdata/no-such-file.toml", nil)
		if err == nil || !strings.Contains(err.Error(), "no-such-file.toml") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSet(t *testing.T) {
	sc := load(t, quickstart, "seed=42", "duration=5m", "radio.sf=8", "traffic.rate=0.5", "engine.retry_base=\"2m\"")
	if sc.Seed != 42 || sc.Duration.Duration != 5*time.Minute || sc.Radio.SF != 8 || sc.Traffic.Rate != 0.5 || sc.Engine.RetryBase.Duration != 2*time.Minute {
		t.Fatalf("sets not applied: %+v", sc)
	}
	if _, err := Parse([]byte("seed = 1\n"), []string{"novalue"}); err == nil {
		t.Fatal("--set without = accepted")
	}
}

// TestGoldenSummary compares a small scenario's summary.json with
// testdata/small.summary.json (go test -run Golden -update rewrites it).
func TestGoldenSummary(t *testing.T) {
	s := runScenario(t, load(t, "testdata/small.toml"), nil)
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/small.summary.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("summary.json differs from %s (run with -update if the change is intended):\n%s", golden, got)
	}
	for _, f := range []string{"scenario.toml", "messages.csv", "broadcasts.csv", "nodes.csv"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v, %d bytes", f, err, len(b))
		}
	}
	// The resolved scenario loads again and replays the same run.
	sc2 := load(t, filepath.Join(dir, "scenario.toml"))
	if h := runScenario(t, sc2, nil).Summary().TraceSHA256; h != s.Summary().TraceSHA256 {
		t.Errorf("resolved scenario replays differently: %s", h)
	}
	var sum Summary
	if err := json.Unmarshal(got, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Sent == 0 || sum.Broadcasts == 0 {
		t.Errorf("small scenario sent %d messages, %d broadcasts", sum.Sent, sum.Broadcasts)
	}
}

// TestDutyCycleDefersThenResumes: a node with far more to send than 1 %
// allows exhausts its hour, waits (blocked time), and sends again later.
func TestDutyCycleDefersThenResumes(t *testing.T) {
	s := runScenario(t, load(t, "testdata/dutycycle.toml"), nil)
	st, _ := s.Stats("a")
	if st.Deferrals == 0 || st.Blocked <= 0 {
		t.Fatalf("a was never deferred: %+v", st)
	}
	if st.DutyPeak > 1 {
		t.Fatalf("a used %.4f of its hourly limit", st.DutyPeak)
	}
	// 36 s per hour at 1 %: in 2.5 h a node that resumed after its first
	// block sent more than one hour's budget.
	if st.Airtime <= 36*time.Second {
		t.Fatalf("a sent only %v of airtime: it did not resume", st.Airtime)
	}
	if st.Airtime > 36*time.Second*3 {
		t.Fatalf("a sent %v of airtime in 2.5 h: more than the duty cycle allows", st.Airtime)
	}
}

// TestPartitionHeal: messages sent while b-c is cut wait in custody and are
// delivered after the heal.
func TestPartitionHeal(t *testing.T) {
	s := runScenario(t, load(t, "testdata/partition.toml"), nil)
	sum := s.Summary()
	if sum.Sent == 0 || sum.Delivered != sum.Sent {
		t.Fatalf("delivered %d of %d", sum.Delivered, sum.Sent)
	}
	for _, m := range s.msgs {
		if m.at.Before(Epoch.Add(10 * time.Minute)) {
			t.Fatalf("message %d delivered at %v, before the heal", m.ref, m.at.Sub(Epoch))
		}
	}
	if st, _ := s.Stats("b"); st.CustodyPeak == 0 {
		if st, _ := s.Stats("a"); st.CustodyPeak == 0 {
			t.Fatal("nobody held custody")
		}
	}
}

// TestTCPLink: a framed TCP mesh link carries unicast and floods
// broadcasts (no gossip).
func TestTCPLink(t *testing.T) {
	doc := `seed = 9
duration = "10m"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[links]]
a = "a"
b = "b"
kind = "tcp"
latency = "5ms"
[traffic]
rate = 0.05
start = "30s"
stop = "5m"
broadcast_rate = 0.01
`
	sc, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := runScenario(t, sc, nil).Summary()
	if sum.Sent == 0 || sum.DeliveryRatio != 1 {
		t.Fatalf("delivered %d of %d", sum.Delivered, sum.Sent)
	}
	if sum.Frames["tcp/data"] == 0 || sum.Frames["gossip"] != 0 || sum.Broadcasts == 0 || sum.BroadcastRx == 0 {
		t.Fatalf("frames %v, broadcasts %d sent %d delivered", sum.Frames, sum.Broadcasts, sum.BroadcastRx)
	}
	if _, err := Parse([]byte(doc+"[[links]]\na = \"b\"\nb = \"a\"\nkind = \"udp\"\n"), nil); err == nil || !strings.Contains(err.Error(), "links[1].kind") {
		t.Fatalf("error %v", err)
	}
}

// TestCrashRestart: the relay of a radio line crashes and restarts from its
// store; messages sent while it is down wait in the origin's custody and are
// delivered after the restart.
func TestCrashRestart(t *testing.T) {
	s := runScenario(t, load(t, "testdata/restart.toml"), nil)
	sum := s.Summary()
	if sum.Sent == 0 || sum.Delivered != sum.Sent || sum.EngineErrors != 0 {
		t.Fatalf("delivered %d of %d, %d engine errors", sum.Delivered, sum.Sent, sum.EngineErrors)
	}
	down, up := Epoch.Add(5*time.Minute), Epoch.Add(12*time.Minute)
	during := 0
	for _, m := range s.msgs {
		if m.sent.After(down) && m.sent.Before(up) {
			during++
			if m.at.Before(up) {
				t.Errorf("message %d sent at %v delivered at %v, while the relay was down", m.ref, m.sent.Sub(Epoch), m.at.Sub(Epoch))
			}
		}
	}
	if during == 0 {
		t.Fatal("no message sent while the relay was down")
	}
	r1 := s.byName["r1"]
	if !r1.up || r1.gen != 1 || len(r1.store) == 0 {
		t.Fatalf("r1 up %v, restarts %d, %d records", r1.up, r1.gen, len(r1.store))
	}
}

func TestBarabasiAlbert(t *testing.T) {
	doc := `seed = 4
duration = "5m"
[[topology]]
kind = "ba"
n = 60
m = 2
prefix = "b"
link = "ip"
ip = { latency = "20ms", jitter = "5ms" }
[traffic]
rate = 0.01
start = "1m"
stop = "3m"
`
	sc, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := runScenario(t, sc, nil)
	// 3 links in the clique, 2 for each of the other 57 nodes.
	if got, want := len(s.links), 3+57*2; got != want {
		t.Fatalf("%d links, want %d", got, want)
	}
	deg := map[*node]int{}
	for _, l := range s.links {
		deg[l.a]++
		deg[l.b]++
	}
	hub := 0
	for _, d := range deg {
		hub = max(hub, d)
	}
	if hub < 8 {
		t.Errorf("largest degree %d: no hub formed", hub)
	}
	if sum := s.Summary(); sum.Sent == 0 || sum.DeliveryRatio < 0.9 {
		t.Errorf("delivered %d of %d", sum.Delivered, sum.Sent)
	}
	if _, err := Parse([]byte(strings.Replace(doc, `link = "ip"`, `link = "lora"`, 1)), nil); err == nil || !strings.Contains(err.Error(), "topology[0].link") {
		t.Errorf("ba over lora: %v", err)
	}
}

// TestCarrierSense: with carrier sense, radios wait for a clear channel:
// fewer frames lost and fewer half-duplex losses from neighbours in range.
// Losses (collisions plus half-duplex losses) are compared under the load
// the scenario suggests for a busy channel (traffic.rate=0.005): over
// three seeds carrier sense loses 48,607 against 71,629 and delivers 227
// messages against 160 of 271. Collisions alone are not the measure:
// without carrier sense most overlapping frames begin at the same instant
// (radios answering the end of one frame), so most of what they destroy
// is lost at receivers that are sending themselves and counts as
// half-duplex; with the RNode's contention (radio_csma.go) the overlaps
// left are hidden nodes and same-slot starts, lost at listening
// receivers. Here collisions fall too (47,731 against 50,368), but at the
// scenario's light load they rise (docs/simulations.md, "Carrier sense",
// has both loads over 24 seeds).
func TestCarrierSense(t *testing.T) {
	var onLost, offLost uint64
	var onDel, offDel int
	for seed := range uint64(3) {
		s := fmt.Sprintf("seed=%d", seed+1)
		const load5 = "traffic.rate=0.005"
		on := runScenario(t, load(t, quickstart, s, load5), nil).Summary()
		off := runScenario(t, load(t, quickstart, s, load5, "radio.carrier_sense=off"), nil).Summary()
		if on.CarrierWaits == 0 || off.CarrierWaits != 0 {
			t.Fatalf("%s: carrier waits: %d with csma, %d without", s, on.CarrierWaits, off.CarrierWaits)
		}
		if on.HalfDuplex >= off.HalfDuplex {
			t.Fatalf("%s: csma: %d half-duplex; off: %d", s, on.HalfDuplex, off.HalfDuplex)
		}
		if on.Sent != off.Sent {
			t.Fatalf("%s: the workload changed with the MAC: %d and %d messages", s, on.Sent, off.Sent)
		}
		onLost, offLost = onLost+on.Collisions+on.HalfDuplex, offLost+off.Collisions+off.HalfDuplex
		onDel, offDel = onDel+on.Delivered, offDel+off.Delivered
	}
	if onLost >= offLost || onDel <= offDel {
		t.Fatalf("csma: %d frames lost, %d delivered over three seeds; off: %d lost, %d delivered", onLost, onDel, offLost, offDel)
	}
}

func TestImportCSV(t *testing.T) {
	sc := load(t, "testdata/import.toml")
	if len(sc.Nodes) != 7 || len(sc.Links) != 3 || len(sc.Topology) != 0 {
		t.Fatalf("%d nodes, %d links, %d topologies left", len(sc.Nodes), len(sc.Links), len(sc.Topology))
	}
	s := runScenario(t, sc, nil)
	sum := s.Summary()
	if sum.RadioNodes != 4 || sum.IPLinks != 3 || sum.Sent == 0 || sum.DeliveryRatio < 0.8 {
		t.Fatalf("summary %+v", sum)
	}
	// The resolved scenario is self-contained: it replays from anywhere.
	dir := t.TempDir()
	if err := s.WriteOutputs(dir); err != nil {
		t.Fatal(err)
	}
	if h := runScenario(t, load(t, filepath.Join(dir, "scenario.toml")), nil).Summary().TraceSHA256; h != sum.TraceSHA256 {
		t.Fatal("the resolved scenario replays differently")
	}
	doc, err := os.ReadFile("testdata/import.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"import.nodes.csv", "missing.csv", "topology[0].nodes_file"},
		{"import.links.csv", "missing.csv", "topology[1].links_file"},
		{`nodes_file = "import.servers.csv"`, "", "topology[1].nodes_file"},
		{"import.servers.csv", "import.links.csv", `no "name" column`},
	} {
		_, err := ParseDir(bytes.Replace(doc, []byte(tc.old), []byte(tc.new), 1), nil, "testdata")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("name,x,y\nh,1,abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ParseDir(bytes.Replace(doc, []byte("import.nodes.csv"), []byte(bad), 1), nil, "testdata")
	if err == nil || !strings.Contains(err.Error(), "row 2: y") {
		t.Errorf("bad number: %v", err)
	}
}
