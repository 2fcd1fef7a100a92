package store

import (
	"fmt"
	"testing"

	"meshd.dev/meshd/routing"
)

// runPipelined is the child of TestPowerLossPipelined: it stages batches
// three at a time with ApplyAsync (so that they share syncs) and prints an
// ack for each once its done reported nil, in order, as the node loop
// carries batches out.
func runPipelined(s *Store, filler int) int {
	next, ok := childReady(s)
	if !ok {
		return 1
	}
	for b := next; ; b += 3 {
		var dones []<-chan error
		var firsts []uint64
		for i := range 3 {
			rd := crashBatch(b + i)
			if filler > 0 {
				// Four keys in turn: the applier merges the writes of a
				// key within the records it applies together, and one key
				// rewritten by every batch would fill memtables slower.
				key := fmt.Sprintf("%s/%d", fillerKey, (b+i)%4)
				rd.Persist = append(rd.Persist, routing.Record{Key: key, Value: make([]byte, filler)})
			}
			seqs, done, err := s.ApplyAsync(rd)
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
		if _, _, err := check(t, synced, acked, "apply"); err != nil {
			t.Fatalf("round %d, power cut after %d acknowledgements: %v", round, cutAfter, err)
		}
	}
}

// fillerKey is the prefix of the records the child of
// TestPowerLossMemtableRotation writes with every batch, fillerSize bytes, so that badger starts a new
// memtable (8 MiB) every 16 batches or so.
const (
	fillerKey  = "f/filler"
	fillerSize = 500 << 10
)

// TestPowerLossMemtableRotation: pipelined batches survive a power cut
// also when badger moved to a new memtable between their commit and the
// group sync. Badger's DB.Sync syncs only the current memtable's log: a
// batch written to the previous one, which badger flushes to a table in
// the background, is on stable storage only once that flush is done.
func TestPowerLossMemtableRotation(t *testing.T) {
	for round, cutAfter := range []int{30, 45, 61, 90} {
		synced, acked := powerRound(t, nil, "apply-async-rotate", cutAfter)
		if _, _, err := check(t, synced, acked, "apply"); err != nil {
			t.Fatalf("round %d, power cut after %d acknowledgements: %v", round, cutAfter, err)
		}
	}
}
