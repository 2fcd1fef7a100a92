package sim

import "testing"

// TestKeyPositions checks the one key index every validation uses: array
// tables are numbered, quoted and dotted keys are found where they start,
// and a key inside a [[nodes]] entry is not taken for a top-level key.
func TestKeyPositions(t *testing.T) {
	doc := []byte("name = \"k\"\n[[nodes]]\nhop_limit = 1\n[[nodes]]\n  x = 2.0\n[broadcast]\n  'hop_limit' = 9\nradio.sf = 7\n")
	pos := keyPositions(doc)
	for key, want := range map[string]keyPos{
		"name":                {1, 1},
		"nodes.0.hop_limit":   {3, 1},
		"nodes.1.x":           {5, 3},
		"broadcast.hop_limit": {7, 3},
		"broadcast.radio.sf":  {8, 1},
	} {
		if got, ok := pos[key]; !ok || got != want {
			t.Errorf("%s at %v (found %v), want %v", key, got, ok, want)
		}
	}
	if p, ok := pos["hop_limit"]; ok {
		t.Errorf("a [[nodes]] key indexed as top-level hop_limit at %v", p)
	}
	if len(pos) != 5 {
		t.Errorf("%d keys indexed, want 5: %v", len(pos), pos)
	}
}
