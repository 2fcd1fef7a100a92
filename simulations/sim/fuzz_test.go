package sim

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: any document and --set value is either a valid scenario or an
// ErrScenario, never a panic.
func FuzzParse(f *testing.F) {
	for _, p := range []string{quickstart, bridged, "testdata/small.toml", "testdata/dutycycle.toml", "testdata/partition.toml", "testdata/restart.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "radio.sf=10")
		f.Add(b, "gossip.mesh_degree=3")
	}
	f.Add([]byte("duration = \"1m\"\n[[nodes]]\nname = \"a\"\nlora = true\n"), "seed=1")
	f.Add([]byte(fappLine), "fapp.scale=0.5")
	f.Add([]byte(fappLine+"relay_links = 1\nrelay_link = { latency = \"5ms\" }\n"), "fapp.query_rate=10")
	f.Add([]byte(ipRing+"[traffic]\npattern = \"hotspot\"\nhotspots = 2\nrate = 0.1\n[churn]\nmtbf = \"5m\"\nmttr = \"1m\"\n"), "traffic.hotspot_share=0.5")
	f.Add([]byte(ipLine+"[traffic]\npattern = \"all-to-all\"\nrate = 0.1\nrounds = 2\n[engine]\nip_advert_radius = 1\n"), "churn.mtbf=\"1m\"")
	f.Fuzz(func(t *testing.T, doc []byte, set string) {
		sc, err := Parse(doc, []string{set})
		if err == nil {
			if err := sc.Validate(); err != nil {
				t.Fatalf("parsed scenario does not validate: %v", err)
			}
		}
	})
}

// FuzzParseGML: any document is a graph or an ErrGML naming a line, never a
// panic; a graph's edges join distinct, existing nodes, once.
func FuzzParseGML(f *testing.F) {
	for _, p := range []string{"testdata/backbone.gml", "testdata/village.gml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("graph [ node [ id -3 label \"x\" graphics [ x 1e3 y -2.5 ] ] ]"))
	f.Add([]byte("graph [ node [ id 1 ] node [ id 2 ] edge [ source 1 target 2 ] ]"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		g, err := ParseGML(doc)
		if err != nil {
			if !errors.Is(err, ErrGML) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error %v does not name a line", err)
			}
			return
		}
		ids := map[int64]bool{}
		for _, n := range g.Nodes {
			if ids[n.ID] {
				t.Fatalf("duplicate id %d", n.ID)
			}
			ids[n.ID] = true
			if (n.X == nil) != (n.Y == nil) {
				t.Fatalf("node %d has half a position", n.ID)
			}
		}
		seen := map[[2]int64]bool{}
		for _, e := range g.Edges {
			k := [2]int64{min(e.Source, e.Target), max(e.Source, e.Target)}
			if !ids[e.Source] || !ids[e.Target] || e.Source == e.Target || seen[k] {
				t.Fatalf("bad edge %+v", e)
			}
			seen[k] = true
		}
	})
}
