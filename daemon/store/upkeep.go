package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// ErrDiskFull: the file system holding the store has less free space than
// the reserve (WithMinFree). The store refuses nothing by itself; the
// daemon asks CheckSpace before it takes on new data (msg.send, envelopes
// from neighbours), so that what the store already holds can still be
// written, compacted and deleted.
var ErrDiskFull = errors.New("store: disk full")

// GCDiscardRatio is the share of a value log file that must be garbage
// before GC rewrites it. 0.5 is badger's recommendation: a rewrite copies
// at most as much as it frees.
const GCDiscardRatio = 0.5

// GCResult is what one GC call did.
type GCResult struct {
	// Rewrites is the number of value log files rewritten.
	Rewrites int
	// Before and After are the store's on-disk size in bytes (every file
	// in its directory) around the GC.
	Before, After int64
}

// Reclaimed is the number of bytes the GC freed (0 if the store grew
// meanwhile).
func (r GCResult) Reclaimed() int64 { return max(r.Before-r.After, 0) }

// GC runs badger's value log garbage collection until it finds no file
// worth rewriting. Badger deletes nothing by itself: a value log file whose
// values were all overwritten, deleted or expired stays on disk until a GC
// rewrites it. Inbox entries and custody records live in the value log
// (see badgerOptions), so their deletes leave garbage there; badger picks
// a file by the discard statistics its compactions keep, and a run that
// finds none worth rewriting costs a lookup.
//
// A rewrite moves a file's live values into the current file and
// memtable, unsynced (the store does not sync badger on its writes), and
// then deletes the old file. Were the deletion on disk before the moved
// values, a power cut would lose values written before the last
// checkpoint, which the write-ahead log no longer holds
// (TestPowerLossValueLogGC lost acknowledged inbox entries without it).
// So each rewrite runs under an iterator (badger deletes a rewritten
// file only once no iterator is open), and GC makes badger durable
// (badgerDurable) before it lets go, file by file: holding every
// deletion to the end of the run would need the moved copies of all the
// files on disk beside their originals, on a disk the GC is meant to
// free (TestGCFreesEachFileBeforeTheNext).
func (s *Store) GC() (GCResult, error) {
	s.long.RLock()
	defer s.long.RUnlock()
	var r GCResult
	var err error
	if r.Before, err = s.DiskUsage(); err != nil {
		return r, err
	}
	s.dsync.gcStarts()
	defer s.dsync.gcEnds(s.cfg.memTableSize)
	for {
		done, err := s.gcOnce()
		if err != nil {
			return r, err
		}
		if done {
			break
		}
		r.Rewrites++
		if s.cfg.gcRewrote != nil {
			s.cfg.gcRewrote()
		}
	}
	r.After, err = s.DiskUsage()
	return r, err
}

// gcOnce runs badger's value log GC once: done when it found no file to
// rewrite. The file it rewrote is deleted, after the values it moved
// were made durable, before it returns.
func (s *Store) gcOnce() (done bool, err error) {
	if s.isClosed() { // Close waits for s.long: not closed before we return
		return true, ErrClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	hold := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyVersion)})
	err = s.rewriteValuesFirst()
	if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
		hold.Close()
		return true, nil
	}
	err = errors.Join(err, s.badgerDurable())
	hold.Close() // badger deletes the rewritten file now
	return err != nil, err
}

// rewriteValuesFirst runs one value log GC rewrite and syncs the value
// log before a memtable log can be synced with the moved values'
// pointers (vlogorder.go): the syncs of badger meanwhile (the
// applier's, the checkpoint, the writes outside the log) wait for the
// rewrite (a file of up to ValueLogFileSize read, its live values
// copied).
func (s *Store) rewriteValuesFirst() error {
	g := &s.dsync
	g.order.Lock()
	defer g.order.Unlock()
	err := s.db.RunValueLogGC(GCDiscardRatio)
	if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
		return err
	}
	if err != nil {
		err = fmt.Errorf("store: value log GC: %w", err)
	}
	// Synced even after a failed rewrite: it may have moved values.
	return errors.Join(err, s.syncValueLog())
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// DiskUsage returns the bytes the store's files occupy on disk (allocated
// blocks, so the sparse tail of a preallocated memtable file does not
// count).
func (s *Store) DiskUsage() (int64, error) {
	var n int64
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed by a compaction meanwhile
				return nil
			}
			return err
		}
		n += allocated(info)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: disk usage: %w", err)
	}
	return n, nil
}

// CheckSpace returns an error wrapping ErrDiskFull when the file system
// holding the store has less free space than the reserve (WithMinFree).
func (s *Store) CheckSpace() error {
	if s.cfg.minFree <= 0 {
		return nil
	}
	free, err := s.cfg.freeSpace(s.dir)
	if err != nil {
		return fmt.Errorf("store: free space: %w", err)
	}
	if free < uint64(s.cfg.minFree) {
		return fmt.Errorf("%w: %d bytes free in %s, below the reserve of %d", ErrDiskFull, free, s.dir, s.cfg.minFree)
	}
	return nil
}

// WithMinFree sets the free-space reserve CheckSpace holds back: the room
// badger needs to finish what it holds (the rest of a memtable, its flush
// to a table, a compaction). Badger writes its memtable through a mapped
// file: a write into a page the full file system cannot back kills the
// process with SIGBUS, so the reserve must cover at least a memtable.
// Default 0: no check.
func WithMinFree(n int64) Option { return func(c *config) { c.minFree = n } }

// withFreeSpace replaces the free-space probe (tests).
func withFreeSpace(f func(dir string) (uint64, error)) Option {
	return func(c *config) { c.freeSpace = f }
}

// CheckRoom returns an error wrapping ErrDiskFull when the file system
// holding dir has less free space than the store's size plus the reserve
// (WithMinFree): what a backup of the store written into dir needs so
// that it cannot eat the reserve badger finishes its writes in (the
// backup is usually written onto the store's own disk). No reserve set:
// no check.
func (s *Store) CheckRoom(dir string) error {
	if s.cfg.minFree <= 0 {
		return nil
	}
	size, err := s.DiskUsage()
	if err != nil {
		return err
	}
	free, err := s.cfg.freeSpace(dir)
	if err != nil {
		return fmt.Errorf("store: free space: %w", err)
	}
	if need := uint64(size) + uint64(s.cfg.minFree); free < need {
		return fmt.Errorf("%w: %d bytes free in %s, a backup needs the store's %d bytes plus the reserve of %d", ErrDiskFull, free, dir, size, s.cfg.minFree)
	}
	return nil
}
