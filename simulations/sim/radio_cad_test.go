package sim

import (
	"strings"
	"testing"
)

// TestCAD: carrier sense by channel activity detection runs, waits on busy
// channels, delivers, and reruns identically; it is not the instantaneous
// csma.
func TestCAD(t *testing.T) {
	cad := []string{"radio.carrier_sense=\"cad\"", "radio.reception.cad_symbols=2.0"}
	a := runScenario(t, load(t, quickstart, cad...), NewTracer(&strings.Builder{})).Summary()
	b := runScenario(t, load(t, quickstart, cad...), NewTracer(&strings.Builder{})).Summary()
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatal("same seed, different traces with CAD")
	}
	csma := runScenario(t, load(t, quickstart), NewTracer(&strings.Builder{})).Summary()
	if a.TraceSHA256 == csma.TraceSHA256 {
		t.Fatal("CAD ran exactly as csma")
	}
	if a.DeliveryRatio < 0.6 {
		t.Errorf("delivery %.2f with CAD", a.DeliveryRatio)
	}
	s := runScenario(t, load(t, quickstart, cad...), nil)
	waits := uint64(0)
	for _, n := range s.nodes {
		waits += n.stats.CarrierWaits
	}
	if waits == 0 {
		t.Error("no node ever found the channel busy")
	}
	if _, err := Parse([]byte(twoNodeDoc("[radio.reception]\ncad_symbols = 3.0\n", "")), nil); err == nil || !strings.Contains(err.Error(), `line 8, column 1: radio.reception.cad_symbols: applies to radio.carrier_sense = "cad" only`) {
		t.Errorf("cad_symbols without cad: %v", err)
	}
	if _, err := Parse([]byte(twoNodeDoc("carrier_sense = \"cad\"\n[radio.reception]\ncad_symbols = 9.0\n", "")), nil); err == nil || !strings.Contains(err.Error(), "cad_symbols: 9 not in 1..8") {
		t.Errorf("cad_symbols 9: %v", err)
	}
}
