package store

import (
	"fmt"
	"testing"

	"meshd.dev/meshd/routing"
)

// The apply-discard child leaves garbage in the value log: records of
// 1.4 KB (under fillerKey, which the report ignores), nine in ten of
// them deleted, the sets and the deletes flushed to two tables (a close
// flushes the memtable), which DB.Flatten compacts: the compaction drops
// the deleted values and counts them as garbage of their value log file
// in badger's DISCARD file. It then applies crashBatch batches, each with
// a big filler record (the write-ahead log's 2 MiB test segment fills in
// a few batches and calls for a checkpoint, before badger flushes or
// compacts again), until the store has taken a checkpoint, and asks for
// the cut. The report-discard child opens what survived and runs the
// value log GC, which must find the file to rewrite: badger counts a
// value as garbage only when a compaction drops it, once, so counts a
// power cut loses leave their garbage on disk for good.
func runApplyDiscard(dir string) int {
	s, err := garbageSetup(dir)
	if err != nil {
		fmt.Println("setup:", err)
		return 1
	}
	fmt.Println("ready")
	done := func() uint64 {
		s.wal.mu.Lock()
		defer s.wal.mu.Unlock()
		return s.wal.checkpointed
	}
	for b, ckpt := 0, done(); done() == ckpt; b++ {
		rd := crashBatch(b)
		rd.Persist = append(rd.Persist, routing.Record{Key: fmt.Sprintf("%s/%d", fillerKey, b%4), Value: make([]byte, 256<<10)})
		seqs, err := s.Apply(rd)
		if err != nil {
			fmt.Println("apply:", err)
			return 1
		}
		fmt.Printf("ack %d %d\n", b, seqs[0])
	}
	fmt.Println("cut")
	select {}
}

// garbageSetup writes and deletes the garbage of apply-discard in a new
// store in dir and returns it open, the garbage counted.
func garbageSetup(dir string) (*Store, error) {
	key := func(i int) string { return fmt.Sprintf("%s/g/%08d", fillerKey, i) }
	const n = 4000
	round := func(del bool) error {
		s, err := openGC(dir)
		if err != nil {
			return err
		}
		for b := 0; b < n; b += 100 {
			var rd routing.Ready
			for i := b; i < b+100; i++ {
				if !del {
					rd.Persist = append(rd.Persist, routing.Record{Key: key(i), Value: crashValue(i)})
				} else if i%10 != 0 {
					rd.Deletes = append(rd.Deletes, key(i))
				}
			}
			if _, err := s.Apply(&rd); err != nil {
				s.Close()
				return err
			}
		}
		return s.Close()
	}
	if err := round(false); err != nil {
		return nil, err
	}
	if err := round(true); err != nil {
		return nil, err
	}
	s, err := openGC(dir)
	if err != nil {
		return nil, err
	}
	if err := s.db.Flatten(1); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func runReportDiscard(dir string) int {
	s, err := openGC(dir)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer s.Close()
	seqs, err := diskBatches(s)
	if err != nil {
		return printBatches(nil, err)
	}
	res, err := s.GC()
	if err == nil && res.Rewrites == 0 {
		err = fmt.Errorf("the value log GC found no file to rewrite after the cut: the garbage counts of the compaction before the checkpoint were lost")
	}
	return printBatches(seqs, err)
}

// TestGarbageSetup: without a power cut, the GC rewrites the file the
// apply-discard child left garbage in (else TestPowerLossDiscardStats
// shows nothing).
func TestGarbageSetup(t *testing.T) {
	s, err := garbageSetup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.GC()
	if err != nil || res.Rewrites == 0 {
		t.Fatalf("GC: %+v, %v", res, err)
	}
}

// TestPowerLossDiscardStats: the garbage counts of a compaction before a
// checkpoint survive a power cut, so the GC can still reclaim that
// garbage.
func TestPowerLossDiscardStats(t *testing.T) {
	total := powerRounds(t, "apply-discard", []int{1 << 30})
	t.Logf("%d acknowledged batches checked", total)
}
