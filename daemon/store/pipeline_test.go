package store

import (
	"fmt"
	"strings"
	"testing"
)

// runPipelined is the child of TestPowerLossPipelined: it stages batches
// three at a time with ApplyAsync (so that they share syncs) and prints an
// ack for each once its done reported nil, in order, as the node loop
// carries batches out.
func runPipelined(s *Store) int {
	recs, err := s.EngineRecords()
	if err != nil {
		fmt.Println("records:", err)
		return 1
	}
	next := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Key, "d/") {
			next++
		}
	}
	fmt.Println("ready")
	for b := next; ; b += 3 {
		var dones []<-chan error
		var firsts []uint64
		for i := range 3 {
			seqs, done, err := s.ApplyAsync(crashBatch(b + i))
			if err != nil {
				fmt.Println("apply:", err)
				return 1
			}
			dones, firsts = append(dones, done), append(firsts, seqs[0])
		}
		for i, done := range dones {
			if err := <-done; err != nil {
				fmt.Println("apply:", err)
				return 1
			}
			fmt.Printf("ack %d %d\n", b+i, firsts[i])
		}
	}
}

// TestPowerLossPipelined: batches staged with ApplyAsync and reported
// synced survive a power cut, like Apply's (TestPowerLoss), although
// several share one sync.
func TestPowerLossPipelined(t *testing.T) {
	for round, cutAfter := range []int{2, 7, 19} {
		synced, acked := powerRound(t, nil, "apply-async", cutAfter)
		if _, _, err := check(t, synced, acked); err != nil {
			t.Fatalf("round %d, power cut after %d acknowledgements: %v", round, cutAfter, err)
		}
	}
}
