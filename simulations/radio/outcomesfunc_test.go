package radio

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestOutcomesFuncMatchesOutcomes: OutcomesFunc hands over the outcomes
// Outcomes returns, in the same order, on a busy random scene (collisions,
// half-duplex losses), and the same error for an unknown transmission.
func TestOutcomesFuncMatchesOutcomes(t *testing.T) {
	nodes := randomScene(4, 300, 3000)
	m, err := NewMedium(nodes, rand.New(rand.NewPCG(3, 1)))
	if err != nil {
		t.Fatal(err)
	}
	var want, got []Reception
	statuses := map[Status]int{}
	runScene(t, m, 5, 2000, 2*time.Millisecond, 0, func(f refTx) {
		want, err = m.Outcomes(f.id, want[:0])
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		if err := m.OutcomesFunc(f.id, func(r Reception) { got = append(got, r) }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tx %d: OutcomesFunc %v, Outcomes %v", f.id, got, want)
		}
		for _, r := range want {
			statuses[r.Status]++
		}
	})
	if statuses[Received] == 0 || statuses[Collision] == 0 {
		t.Fatalf("scene too quiet to compare: %v", statuses)
	}
	if err := m.OutcomesFunc(1<<40, func(Reception) { t.Fatal("called for an unknown tx") }); !errors.Is(err, ErrUnknownTx) {
		t.Fatalf("unknown tx: %v", err)
	}
}
