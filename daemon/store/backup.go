package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// ErrNotEmpty: Load was given a directory that already holds files.
var ErrNotEmpty = errors.New("store: directory is not empty")

// Backup writes a consistent snapshot of the whole store to w while the
// store stays open for writers: badger's backup stream (the latest
// version of every live key at one read timestamp; deleted and expired
// keys are left out). Load reads it back.
func (s *Store) Backup(w io.Writer) error {
	s.long.RLock()
	defer s.long.RUnlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := s.waitApplied(); err != nil {
		return err
	}
	s.wal.mu.Lock()
	hook := s.wal.backupHook
	s.wal.mu.Unlock()
	if hook != nil {
		hook()
	}
	// Badger's DB.Backup reads with one transaction per reader goroutine,
	// each at its own timestamp, and the applier may commit one record
	// over several transactions: a backup could hold part of a batch
	// (TestWALBackupMidRecord). So the stream has one reader, and the
	// applier waits from between two records until that reader's
	// transaction exists (it has seen the first key); writers go on
	// logging meanwhile.
	if !s.wal.applying.TryLock() {
		s.wal.mu.Lock()
		waits := s.wal.backupWaits
		s.wal.mu.Unlock()
		if waits != nil {
			waits()
		}
		s.wal.applying.Lock()
	}
	release := sync.OnceFunc(s.wal.applying.Unlock)
	defer release()
	stream := s.db.NewStream()
	stream.LogPrefix = "store.Backup"
	stream.NumGo = 1
	stream.ChooseKey = func(*badger.Item) bool {
		release() // the reader's transaction exists: its timestamp is fixed
		return true
	}
	if _, err := stream.Backup(w, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// Load creates a store in dir, which must not exist or be empty, from a
// stream Backup wrote, and checks that the result opens as a store. On
// error dir may hold a partial database: the caller loads into a scratch
// directory and renames it into place (meshd restore does).
func Load(dir string, r io.Reader, opts ...Option) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	c := config{memTableSize: 8 << 20}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if err := MkdirDurable(dir); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	db, err := badger.Open(badgerOptions(dir, &c))
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	err = db.Load(r, 16)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: loading the backup: %v", ErrCorrupt, err)
	}
	s, err := Open(dir, append([]Option{WithLogger(c.logger)}, opts...)...)
	if err != nil {
		return fmt.Errorf("store: the restored database does not open: %w", err)
	}
	return s.Close()
}

// CheckBackupStream checks the framing of a backup stream of size bytes
// before Load reads it: badger's stream is a sequence of chunks, each an
// 8-byte little-endian length and that many bytes, and badger's Load
// allocates whatever length a chunk claims. A damaged or crafted stream
// whose length runs past its end is refused here instead of costing an
// allocation of up to 2^64 bytes.
func CheckBackupStream(r io.ReaderAt, size int64) error {
	var l [8]byte
	for off := int64(0); off < size; {
		if size-off < 8 {
			return fmt.Errorf("%w: backup stream: %d stray bytes at the end", ErrCorrupt, size-off)
		}
		if _, err := r.ReadAt(l[:], off); err != nil {
			return fmt.Errorf("store: backup stream: %w", err)
		}
		off += 8
		n := binary.LittleEndian.Uint64(l[:])
		if n > uint64(size-off) {
			return fmt.Errorf("%w: backup stream: a chunk of %d bytes at offset %d runs past the end (%d)", ErrCorrupt, n, off-8, size)
		}
		off += int64(n)
	}
	return nil
}
