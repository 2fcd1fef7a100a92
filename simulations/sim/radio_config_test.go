package sim

import (
	"errors"
	"strings"
	"testing"
)

const twoNodes = `name = "antennas"
seed = 1
duration = "1m"

[radio]
sf = 12
%s
[[nodes]]
name = "a"
lora = true
x = 0.0
y = 0.0
%s
[[nodes]]
name = "b"
lora = true
x = 2500.0
y = 0.0
`

func twoNodeDoc(radioKeys, nodeKeys string) string {
	return strings.Replace(strings.Replace(twoNodes, "%s", radioKeys, 1), "%s", nodeKeys, 1)
}

// TestPropagationKeys: a Hata suburban scenario links two 2 m nodes 2.5 km
// apart, the log-distance default does not, and a mast reaches further.
func TestPropagationKeys(t *testing.T) {
	reach := func(doc string) int {
		t.Helper()
		sc, err := Parse([]byte(doc), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		nb, err := s.medium.Neighbours(0, s.params)
		if err != nil {
			t.Fatal(err)
		}
		return len(nb)
	}
	noShadow := "shadow_sigma_db = 0.0\n"
	if n := reach(twoNodeDoc(noShadow, "")); n != 0 {
		t.Errorf("log-distance: 2.5 km link exists (%d)", n)
	}
	hata := noShadow + "[radio.propagation]\nmodel = \"hata\"\nenvironment = \"suburban\"\n"
	if n := reach(twoNodeDoc(hata, "")); n != 1 {
		t.Errorf("hata suburban: 2.5 km link missing")
	}
	if n := reach(twoNodeDoc(noShadow+"[radio.propagation]\nmodel = \"hata\"\nenvironment = \"urban\"\n", "")); n != 0 {
		t.Errorf("hata urban: 2.5 km link exists")
	}
	if n := reach(twoNodeDoc(noShadow+"[radio.propagation]\nmodel = \"hata\"\nenvironment = \"urban\"\n", "height_m = 20.0\n")); n != 1 {
		t.Errorf("hata urban with a 20 m mast: 2.5 km link missing")
	}
}

// TestPropagationKeyErrors: bad keys are refused with their line and
// column, and the rule that forbids them.
func TestPropagationKeyErrors(t *testing.T) {
	for _, tc := range []struct{ radio, node, want string }{
		{"[radio.propagation]\nmodel = \"okumura\"\n", "", `line 8, column 1: radio.propagation.model: "okumura" is not`},
		{"[radio.propagation]\nenvironment = \"desert\"\n", "", "line 8, column 1: radio.propagation.environment"},
		{"[radio.propagation]\nantenna_height_m = -3.0\n", "", "line 8, column 1: radio.propagation.antenna_height_m: -3 not in"},
		{"", "  height_m = 5000.0\n", "line 13, column 3: nodes.0.height_m: 5000 not in"},
		{"", "gain_dbi = 99.0\n", "line 13, column 1: nodes.0.gain_dbi"},
		{"[radio.propagation]\nmodel = \"hata\"\nexponent = 3.0\n", "", `radio.propagation.exponent: applies to model = "log-distance" only`},
		{"frequency_hz = 2400000000\nduty_cycle = \"off\"\n[radio.propagation]\nmodel = \"hata\"\n", "", "Okumura-Hata holds for 150-1500 MHz"},
	} {
		_, err := Parse([]byte(twoNodeDoc(tc.radio, tc.node)), nil)
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: %v, want %q", tc.radio, tc.node, err, tc.want)
		}
	}
}

// TestCaptureZero: capture_db = 0 means a 0 dB capture threshold (it used
// to become the 6 dB default), and leaving it out means 6 dB.
func TestCaptureZero(t *testing.T) {
	for _, tc := range []struct {
		keys string
		want float64
	}{{"capture_db = 0.0\n", 0}, {"", 6}, {"capture_db = 1.5\n", 1.5}} {
		sc, err := Parse([]byte(twoNodeDoc(tc.keys, "")), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.medium.CaptureThresholdDB(); got != tc.want {
			t.Errorf("%q: capture threshold %v dB, want %v", tc.keys, got, tc.want)
		}
	}
}
