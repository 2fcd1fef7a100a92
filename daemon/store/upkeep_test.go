package store

import (
	"errors"
	"io"
	"testing"

	"meshd.dev/meshd/routing"
)

// GC reports the store's size around it, finds nothing to rewrite in a
// store whose values all live in the LSM tree, and refuses a closed store.
func TestGC(t *testing.T) {
	s := openT(t, t.TempDir())
	var rd routing.Ready
	for i := range 500 {
		rd.Persist = append(rd.Persist, routing.Record{Key: benchKeys(500)[i], Value: benchValue()})
	}
	if _, err := s.Apply(&rd); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC()
	if err != nil {
		t.Fatal(err)
	}
	if res.Before <= 0 || res.After <= 0 || res.Rewrites != 0 {
		t.Errorf("GC: %+v", res)
	}
	s.Close()
	if _, err := s.GC(); !errors.Is(err, ErrClosed) {
		t.Errorf("GC on a closed store: %v", err)
	}
}

// CheckSpace refuses below the reserve, with the figures, and not at or
// above it; without a reserve it never asks.
func TestCheckSpace(t *testing.T) {
	free := uint64(100)
	probe := withFreeSpace(func(string) (uint64, error) { return free, nil })
	s := openT(t, t.TempDir(), WithMinFree(100), probe)
	if err := s.CheckSpace(); err != nil {
		t.Errorf("100 bytes free, reserve 100: %v", err)
	}
	free = 99
	if err := s.CheckSpace(); !errors.Is(err, ErrDiskFull) {
		t.Errorf("99 bytes free, reserve 100: %v", err)
	}
	broken := withFreeSpace(func(string) (uint64, error) { return 0, errors.New("no statfs") })
	if err := openT(t, t.TempDir(), WithMinFree(100), broken).CheckSpace(); err == nil || errors.Is(err, ErrDiskFull) {
		t.Errorf("failing probe: %v, want an error that is not ErrDiskFull", err)
	}
	if err := openT(t, t.TempDir(), broken).CheckSpace(); err != nil {
		t.Errorf("no reserve: %v", err)
	}
}

// Close waits for a backup in flight instead of closing badger under it.
func TestCloseWaitsForBackup(t *testing.T) {
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Backup(blockingWriter{started, release}) }()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a backup was writing", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("backup: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Backup(io.Discard); !errors.Is(err, ErrClosed) {
		t.Errorf("backup after close: %v", err)
	}
}

// blockingWriter signals its first write and holds it until released.
type blockingWriter struct{ started, release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	select {
	case <-w.started:
	default:
		close(w.started)
	}
	<-w.release
	return len(p), nil
}
