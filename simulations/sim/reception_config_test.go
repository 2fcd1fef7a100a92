package sim

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// allReception turns every optional reception model on.
var allReception = []string{
	"radio.reception.fading=\"rician\"", "radio.reception.rician_k_db=3.0",
	"radio.reception.error_model=\"curve\"", "radio.reception.interference=\"sum\"",
	"radio.reception.sf_rejection=\"croce\"", "radio.reception.capture_window_symbols=3.0",
	"radio.reception.turnaround=\"1ms\"",
}

// TestReceptionDeterminism: with every reception model on, the same seed
// gives the same trace, another seed another, and the run still delivers.
func TestReceptionDeterminism(t *testing.T) {
	a := runScenario(t, load(t, quickstart, allReception...), NewTracer(&strings.Builder{})).Summary()
	b := runScenario(t, load(t, quickstart, allReception...), NewTracer(&strings.Builder{})).Summary()
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatalf("same seed, different traces: %s %s", a.TraceSHA256, b.TraceSHA256)
	}
	plain := runScenario(t, load(t, quickstart), NewTracer(&strings.Builder{})).Summary()
	if plain.TraceSHA256 == a.TraceSHA256 {
		t.Fatal("the reception models changed nothing")
	}
	if a.DeliveryRatio < 0.5 {
		t.Errorf("delivery %.2f with fading and the curve", a.DeliveryRatio)
	}
	// The resolved scenario (scenario.toml) replays the same run, with
	// CAD, a node's own antenna and capture_db = 0 too.
	for _, sets := range [][]string{allReception, {"radio.carrier_sense=\"cad\"", "radio.capture_db=0.0",
		"radio.propagation.model=\"hata\"", "radio.propagation.antenna_height_m=3.0"}} {
		s := runScenario(t, load(t, quickstart, sets...), NewTracer(&strings.Builder{}))
		dir := t.TempDir()
		if err := s.WriteOutputs(dir); err != nil {
			t.Fatal(err)
		}
		again := runScenario(t, load(t, filepath.Join(dir, "scenario.toml")), NewTracer(&strings.Builder{})).Summary()
		if again.TraceSHA256 != s.Summary().TraceSHA256 {
			t.Errorf("%v: the resolved scenario replays differently", sets)
		}
	}
}

func TestReceptionKeyErrors(t *testing.T) {
	for _, tc := range []struct{ radio, node, want string }{
		{"[radio.reception]\nfading = \"nakagami\"\n", "", `line 8, column 1: radio.reception.fading: "nakagami" is not none`},
		{"[radio.reception]\nrician_k_db = 3.0\n", "", `line 8, column 1: radio.reception.rician_k_db: applies to fading = "rician" only`},
		{"[radio.reception]\nerror_model = \"ber\"\n", "", "radio.reception.error_model"},
		{"[radio.reception]\ninterference = \"max\"\n", "", "radio.reception.interference"},
		{"[radio.reception]\nsf_rejection = \"perfect\"\n", "", "radio.reception.sf_rejection"},
		{"[radio.reception]\nsensitivity = \"sx1262\"\n", "", "radio.reception.sensitivity"},
		{"[radio.reception]\nerror_model = \"curve\"\nsensitivity = \"sx1276\"\n", "", `line 9, column 1: radio.reception.sensitivity: applies to error_model = "threshold"`},
		{"[radio.reception]\ncapture_window_symbols = 9.0\n", "", "line 8, column 1: radio.reception.capture_window_symbols: 9 not in 0..8 (radio.preamble_symbols)"},
		{"[radio.reception]\nlater_capture = true\ncapture_window_symbols = 3.0\n", "", "later_capture = true, which is an unlimited window"},
		{"[radio.reception]\nturnaround = \"1s\"\n", "", "radio.reception.turnaround: 1s not in 0..100ms"},
		// 17 dBm is 14.85 dBm e.r.p., above g1's 25 mW.
		{"tx_power_dbm = 17.0\n", "", "line 7, column 1: radio.tx_power_dbm: radio: transmit power above the sub-band's limit"},
		{"[radio.propagation]\nantenna_gain_dbi = 6.0\n", "", "radio.tx_power_dbm"},
		{"", "gain_dbi = 5.0\n", `line 13, column 1: nodes.0.gain_dbi: node "a"`},
		{"capture_db = 31.0\n", "", "radio.capture_db: 31 not in 0..30"},
	} {
		_, err := Parse([]byte(twoNodeDoc(tc.radio, tc.node)), nil)
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q:\n got %v\nwant %q", tc.radio, tc.node, err, tc.want)
		}
	}
	// The same powers pass outside the EU868 rules, and 14 dBm with a
	// 2.15 dBi dipole is the customary 25 mW.
	for _, ok := range []string{"tx_power_dbm = 17.0\nduty_cycle = \"off\"\n", "[radio.propagation]\nantenna_gain_dbi = 2.15\n"} {
		if _, err := Parse([]byte(twoNodeDoc(ok, "")), nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
