package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"meshd.dev/meshd/routing"
)

// applyAndSync writes rd into badger as the log's applier does and syncs
// badger as the writers outside the log do: the path syncFiles guards.
func applyAndSync(t *testing.T, s *Store, rd *routing.Ready) {
	t.Helper()
	s.mu.Lock()
	units, _, err := s.units(rd)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var ops []op
	for _, u := range units {
		ops = append(ops, u...)
	}
	if _, err := s.applyOps(ops); err != nil {
		t.Fatal(err)
	}
	if err := s.syncNow(); err != nil {
		t.Fatal(err)
	}
}

func dirReads(s *Store) (reads, memFid int, names []string) {
	s.dsync.mu.Lock()
	defer s.dsync.mu.Unlock()
	return s.dsync.reads, s.dsync.memFid, slices.Clone(s.dsync.names)
}

// TestSyncFilesStatsNextMemtable: a sync reads the data directory only
// when badger may have switched memtables: when the log numbered one past
// the last seen exists, or when the writes since the last read could fill
// half a memtable. Small synced batches cost no directory read; a new
// memtable log is found (and, with it, the directory synced) by the next
// sync.
func TestSyncFilesStatsNextMemtable(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	reads0, fid, _ := dirReads(s)
	if fid == 0 {
		t.Fatal("no memtable log seen at open")
	}
	for b := range 50 {
		applyAndSync(t, s, crashBatch(b))
	}
	if reads, _, _ := dirReads(s); reads != reads0 {
		t.Fatalf("50 small batches read the directory %d times, want none", reads-reads0)
	}

	// A new memtable log as badger would create it.
	next := filepath.Join(dir, fmt.Sprintf("%05d.mem", fid+1))
	if err := os.WriteFile(next, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(next)
	applyAndSync(t, s, crashBatch(50))
	reads, got, names := dirReads(s)
	if reads != reads0+1 || got != fid+1 || !slices.Contains(names, filepath.Base(next)) {
		t.Fatalf("after a new memtable log: %d reads (want %d), highest log %d (want %d), names %v",
			reads, reads0+1, got, fid+1, names)
	}
	if err := os.Remove(next); err != nil {
		t.Fatal(err)
	}

	// Half a memtable of writes: the backstop reads the directory.
	big := &routing.Ready{Persist: []routing.Record{{Key: "f/big", Value: make([]byte, 512<<10)}}}
	for range (8 << 20) / 2 / (512 << 10) {
		applyAndSync(t, s, big)
	}
	if r, _, _ := dirReads(s); r != reads+1 {
		t.Fatalf("half a memtable written: %d directory reads, want 1", r-reads)
	}
}
