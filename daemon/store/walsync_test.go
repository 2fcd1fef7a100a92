package store

import (
	"errors"
	"runtime"
	"testing"

	"meshd.dev/meshd/routing"
)

// TestSyncLeavesValueLogOnlyWhileEmpty: the group sync skips badger's
// value log (syncs the memtable log itself) only while nothing written
// since the last DB.Sync can be in it; a transaction the store does not
// see sends the next sync through DB.Sync, and the one after is the
// store's own again.
func TestSyncLeavesValueLogOnlyWhileEmpty(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the store syncs the memtable log itself on Linux only")
	}
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &s.dsync.wal
	// A write the store sees, then a sync of badger (what Open and the
	// writers outside the write-ahead log do; the log's records reach
	// badger through applyOps).
	apply := func(key string) {
		t.Helper()
		if _, err := s.applyOps([]op{{key: engineKey(key), value: make([]byte, w.threshold-1)}}); err != nil {
			t.Fatal(err)
		}
		if err := s.syncNow(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (int64, int64) { return w.full.Load(), w.own.Load() }

	full0, own0 := count()
	apply("c/1")
	if full, own := count(); full != full0 || own != own0+1 {
		t.Fatalf("a record below the threshold: %d DB.Sync, %d own syncs; want 0 and 1", full-full0, own-own0)
	}
	big := make([]byte, w.threshold)
	if err := s.update(func(txn guardTxn) error { return txn.Set([]byte("k/big"), big) }); err != nil {
		t.Fatal(err)
	}
	if full, _ := count(); full != full0+1 {
		t.Fatalf("after a transaction the store does not see: %d DB.Sync, want 1", full-full0)
	}
	apply("c/2")
	if full, own := count(); full != full0+1 || own != own0+2 {
		t.Fatalf("the sync after it: %d DB.Sync, %d own syncs in all; want 1 and 2", full-full0, own-own0)
	}
}

// TestSyncBeforeWriteDoesNotCoverIt: a group sync that runs after a
// transaction is counted but before badger has written it (a batch of the
// pipeline syncing meanwhile) must not count as the DB.Sync covering its
// value log write: the sync that reports the transaction goes through
// DB.Sync.
func TestSyncBeforeWriteDoesNotCoverIt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the store syncs the memtable log itself on Linux only")
	}
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &s.dsync.wal
	var full0 int64
	s.cfg.afterCount = func() {
		if err := s.syncLogs(); err != nil {
			t.Error(err)
		}
		full0 = w.full.Load()
	}
	big := make([]byte, w.threshold)
	if err := s.update(func(txn guardTxn) error { return txn.Set([]byte("k/big"), big) }); err != nil {
		t.Fatal(err)
	}
	if full := w.full.Load(); full != full0+1 {
		t.Fatalf("the sync after a value log write: %d DB.Sync, want 1 (a sync that began before the write covered it)", full-full0)
	}
}

// TestSyncFailureSticks: after a sync fails, the kernel may have dropped
// the dirty pages and reports the failure once (a later fdatasync of the
// same file succeeds), so every later sync must fail too: a batch
// written before the failure must never be reported durable.
func TestSyncFailureSticks(t *testing.T) {
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	failures := 1
	s.cfg.syncFault = func() error {
		if failures > 0 {
			failures--
			return errors.New("EIO")
		}
		return nil
	}
	rec := func(key string) *routing.Ready {
		return &routing.Ready{Persist: []routing.Record{{Key: key, Value: []byte("v")}}}
	}
	if _, err := s.Apply(rec("c/1")); err == nil {
		t.Fatal("the failed sync was reported as a success")
	}
	if _, err := s.Apply(rec("c/2")); err == nil {
		t.Fatal("the sync after a failed one reported success: c/1 (written before the failure) may be lost")
	}
}
