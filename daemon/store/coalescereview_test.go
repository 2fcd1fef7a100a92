package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"meshd.dev/meshd/routing"
)

// The tests here model a power cut that takes badger back to its last
// sync: every badger write the applier committed after it is gone, as
// the page cache may lose it (crashCopy keeps it). The log and its
// checkpoint file are taken at the cut.

// rolledBack builds the store a power cut leaves: badger's files from
// snap (a copy taken when badger was durable), the log from a copy of s
// now with its unsynced records gone.
func rolledBack(t *testing.T, s *Store, snap string) string {
	t.Helper()
	now := crashCopy(t, s)
	unsyncedGone(t, now, s.wal.durable.Load())
	return withLogOf(t, snap, now)
}

// withLogOf returns a copy of badger's files from snap with the log
// directory (segments, id, checkpoint) of now.
func withLogOf(t *testing.T, snap, now string) string {
	t.Helper()
	dst := crashCopyDir(t, snap)
	if err := os.RemoveAll(filepath.Join(dst, walDirName)); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(now, walDirName)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, walDirName, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, walDirName, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestWALSkippedDeleteRollback: a delete the applier applied (badger
// does not hold the key any more, unsynced), then a set and a delete of
// the key applied together (coalesced into a delete left out, since
// badger's Get says the key is absent). A power cut takes badger back to
// before the first delete, so badger holds the old value again; the log
// replays all three records (no checkpoint covers them) and the key
// stays deleted. The negative control: the same cut with a checkpoint
// file that claims the records (a checkpoint not backed by a badger
// sync) brings the old value back, so the model sees a resurrection.
func TestWALSkippedDeleteRollback(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	apply(t, s, rec("c/k", "v0"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := crashCopyDir(t, dir) // closed: badger durable, c/k = v0
	s = openT(t, dir)
	ckpts := s.wal.ckpts.Load()
	apply(t, s, &routing.Ready{Deletes: []string{"c/k"}})
	records(t, s) // applied alone: badger's delete, not synced
	apply(t, s, rec("c/k", "v1"))
	apply(t, s, &routing.Ready{Deletes: []string{"c/k"}})
	if got := records(t, s); len(got) != 0 {
		t.Fatalf("records: %v", got)
	}
	if v := badgerVersions(t, s)["c/k"]; len(v) != 2 || !v[0].del || v[1].del {
		t.Fatalf("badger holds %+v of c/k, want the first delete over v0 (the second delete left out)", v)
	}
	if n := s.wal.ckpts.Load(); n != ckpts {
		t.Fatalf("%d checkpoints meanwhile: the model needs none", n-ckpts)
	}
	cut := rolledBack(t, s, snap)
	neg := crashCopyDir(t, cut)
	c := openT(t, cut)
	if got := records(t, c); len(got) != 0 {
		t.Fatalf("after the cut: %v, want c/k deleted", got)
	}
	// Negative control: a checkpoint of the last record over the old badger.
	s.wal.mu.Lock()
	last := s.wal.logged
	s.wal.mu.Unlock()
	if err := writeCheckpoint(filepath.Join(neg, walDirName), last, true); err != nil {
		t.Fatal(err)
	}
	n := openT(t, neg)
	if got := records(t, n); got["c/k"] != "v0" {
		t.Fatalf("negative control: %v, want c/k = v0 back (the model cannot see a resurrection)", got)
	}
}

// TestWALLagRotateRollback: small segments, so the writer switches
// segments (and asks for checkpoints) while records queue for the
// applier, and checkpoints race the lagging applier. At every checkpoint
// a copy of badger is taken (between its sync and the checkpoint file,
// with the applier held out between groups); after each batch, a power
// cut takes badger back to the newest copy and keeps the log: every
// acknowledged batch survives, no deleted custody record comes back.
func TestWALLagRotateRollback(t *testing.T) {
	old := walSegSize
	walSegSize = 64 << 10 // about three small lagBatch records a segment
	t.Cleanup(func() { walSegSize = old })
	dir := t.TempDir()
	s := openT(t, dir)
	var mu sync.Mutex
	snap := crashCopyDir(t, dir)
	setHook(s, func() {
		s.wal.ckptHook = func() {
			s.wal.applying.Lock()
			defer s.wal.applying.Unlock()
			mu.Lock()
			defer mu.Unlock()
			snap = crashCopyDir(t, dir)
		}
	})
	const n = lagBig - 2
	for b := range n {
		apply(t, s, lagBatch(b))
		if b%3 != 2 {
			continue
		}
		mu.Lock() // no checkpoint file moves past snap meanwhile
		cut := rolledBack(t, s, snap)
		mu.Unlock()
		checkLagBatches(t, cut, b+1)
	}
	if c := s.wal.ckpts.Load(); c < 3 {
		t.Fatalf("%d checkpoints", c)
	}
	t.Logf("checkpoints: %d, applier: %+v", s.wal.ckpts.Load(), s.ApplierStats())
}

// TestWALApplyFailQueued: the apply of queued records fails. The reader
// that asked for it gets the failure, the store refuses new batches,
// Close reports the failure and takes no checkpoint, and the next start
// replays the queued records: every acknowledged batch is there, the
// refused one is not.
func TestWALApplyFailQueued(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	for b := range 3 {
		apply(t, s, lagBatch(b))
	}
	waitIdle(s)
	if q := queued(s); q != 3 {
		t.Fatalf("%d records queued, want 3", q)
	}
	boom := errors.New("boom")
	setHook(s, func() { s.wal.applyHook = func() error { return boom } })
	if _, err := s.EngineRecords(); !errors.Is(err, boom) {
		t.Fatalf("reader after a failed apply: %v, want boom", err)
	}
	if _, err := s.Apply(lagBatch(3)); err == nil {
		t.Fatal("a failed store took a batch")
	}
	if _, _, err := s.Inbox(0, 10); !errors.Is(err, boom) {
		t.Fatalf("Inbox after a failed apply: %v", err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close of a failed store reported nothing")
	}
	checkLagBatches(t, dir, 3)
}
