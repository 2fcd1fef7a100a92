package sim

import (
	"math"
	"testing"
)

// TestLocalPattern: with pattern = "local" every destination lies within
// the radius of its sender, is not the sender, and the draws are spread
// over the nodes in reach (not one neighbour), deterministically.
func TestLocalPattern(t *testing.T) {
	doc := `seed = 3
duration = "4m"
[radio]
sf = 9
frequency_hz = 869525000
[[topology]]
kind = "random"
n = 60
prefix = "n"
link = "lora"
width = 2000.0
height = 2000.0
[traffic]
pattern = "local"
local_radius_m = 500.0
rate = 0.05
start = "1m"
`
	s := runScenario(t, parse(t, doc), nil)
	if len(s.msgs) < 200 {
		t.Fatalf("%d messages", len(s.msgs))
	}
	dests := map[*node]bool{}
	for _, m := range s.msgs {
		d := math.Hypot(m.src.x-m.dst.x, m.src.y-m.dst.y)
		if m.src == m.dst || d > 500 {
			t.Fatalf("%s -> %s: %.0f m", m.src.name, m.dst.name, d)
		}
		dests[m.dst] = true
	}
	if len(dests) < 30 {
		t.Errorf("only %d distinct destinations", len(dests))
	}
	if again := runScenario(t, parse(t, doc), nil).Summary(); again.TraceSHA256 != s.Summary().TraceSHA256 {
		t.Fatal("local run not deterministic")
	}
}
