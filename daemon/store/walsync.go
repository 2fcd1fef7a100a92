package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
)

// Syncing only the log that holds data. (Since the store has its own
// write-ahead log, wal.go, the message path syncs that log and never
// badger; the syncs here serve the writers outside the log, syncNow,
// which commit through updateLocked and so always go through DB.Sync.)
// Badger's DB.Sync msyncs two
// memory-mapped files: the current memtable's log, where every record the
// store writes goes (values below ValueThreshold stay in the LSM tree, see
// badgerOptions), and the current value log file, which holds nothing new
// unless a value of ValueThreshold bytes or more was written. (Since
// session 16 the threshold is 128 bytes and the applier's writes nearly
// always reach the value log, so syncNow goes through DB.Sync; the rule
// below still serves a store whose writes stayed below it.) On ext4 the second msync still costs a flush of the
// device's cache: over a quarter of each group sync's time
// (docs/performance.md, "third round"). So on Linux, where an fdatasync
// of a file also writes the pages dirtied through a shared mapping of it
// (msync is implemented the same way; syncFiles relies on it already for
// the memtable logs after a switch), the store syncs the memtable log
// numbered memFid (the highest its last directory read saw) itself and
// leaves the value log out, as long as
//   - nothing since the last DB.Sync may have gone to the value log: a
//     record value of ValueThreshold bytes or more, a transaction whose
//     records the store does not see (updateLocked), a value log GC run
//     (during it, and the first sync after it); any of them sends the
//     next syncs through DB.Sync until one that began after it has
//     finished;
//   - the directory has been read once (memFid is known).
// A memtable switch since the last read is found by syncFiles right
// after, which then syncs every memtable log: the same rule as with
// DB.Sync, which also synced the current log only.

// walSync is the store's handle on the memtable log it syncs.
type walSync struct {
	// vlogGen counts the writes that may have reached the value log;
	// vlogSynced is the highest count a finished DB.Sync covered.
	vlogGen, vlogSynced atomic.Int64
	fid                 int // of f; guarded by dirSync.mu
	f                   *os.File
	// threshold is badger's ValueThreshold, set at Open: the smallest
	// value it may put in the value log.
	threshold int
	// full and own count the syncs through DB.Sync and the store's own
	// (tests).
	full, own atomic.Int64
	// failed is the first sync failure. It sticks: the kernel reports a
	// failed write-back once and may drop the pages, so a later sync of
	// the same file succeeds without them, and a batch written before
	// the failure would be reported durable.
	failed atomic.Pointer[error]
}

// sticky returns the first sync failure, if any.
func (w *walSync) sticky() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err (not nil) as the sync failure unless one is recorded.
func (w *walSync) fail(err error) error {
	w.failed.CompareAndSwap(nil, &err)
	return w.sticky()
}

// mayUseVlog notes a write that may have put a value in the value log.
func (w *walSync) mayUseVlog() { w.vlogGen.Add(1) }

// syncLogs makes every record committed so far durable in badger's logs.
func (s *Store) syncLogs() error {
	s.dsync.order.RLock() // vlogorder.go
	defer s.dsync.order.RUnlock()
	w := &s.dsync.wal
	gen := w.vlogGen.Load()
	if runtime.GOOS != "linux" || gen != w.vlogSynced.Load() || s.dsync.opaque.Load() > 0 {
		w.full.Add(1)
		if err := s.db.Sync(); err != nil {
			return err
		}
		for {
			old := w.vlogSynced.Load()
			if old >= gen || w.vlogSynced.CompareAndSwap(old, gen) {
				return nil
			}
		}
	}
	g := &s.dsync
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.names == nil {
		w.full.Add(1)
		return s.db.Sync()
	}
	if w.f == nil || w.fid != g.memFid {
		w.closeLocked()
		f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("%05d.mem", g.memFid)), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			w.full.Add(1)
			return s.db.Sync() // flushed already: badger knows the current one
		}
		if err != nil {
			return err
		}
		w.f, w.fid = f, g.memFid
	}
	w.own.Add(1)
	return datasync(w.f)
}

// closeLocked closes the log file kept open, if any (dirSync.mu held).
func (w *walSync) closeLocked() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
