package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// Values before their pointers. A write of a value of ValueThreshold
// bytes or more puts the value in the value log and a pointer to it in
// the memtable log, both through mappings, unsynced; DB.Sync then syncs
// the memtable log first and the value log after. A power cut between
// the two (or a sync of the memtable log by another goroutine, the
// applier's or the checkpointer's, while the value is not yet synced)
// keeps the pointer and loses the value: the key reads as empty, and
// its previous value, acknowledged long before, is shadowed. For the
// keys of the write-ahead log replay writes them again; for a write
// outside it (updateLocked: a remembered peer's record refreshed at
// each link-up) and for the values the value log GC moves (which the
// log no longer holds) nothing does (TestPowerLossKnownPeers lost the
// peer in most runs). So those writers commit under dirSync.order's
// write lock and sync the value log (syncValueLog) before they let go,
// and every sync of a memtable log (syncLogs, syncFiles, badgerDurable)
// holds its read lock: no memtable log reaches the disk with a pointer
// whose value is not there. (Two orderings the store cannot see stay:
// badger flushing a memtable to a table in the window, which needs a
// memtable switch right after such a commit, and the kernel writing a
// dirty page of the memtable log back early.)

// syncValueLog fsyncs the value log files numbered from the highest one
// its last call saw, and the directory if there is a newer one (a value
// in a file the directory does not hold is lost with it). The caller
// holds dirSync.order's write lock.
func (s *Store) syncValueLog() error {
	if s.cfg.noSync {
		return nil
	}
	g := &s.dsync
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	top := g.vlogTop
	for _, e := range ents {
		if fid, ok := vlogNumber(e.Name()); ok && fid >= g.vlogTop {
			if err := syncFile(filepath.Join(s.dir, e.Name())); err != nil {
				return fmt.Errorf("store: sync: %w", err)
			}
			top = max(top, fid)
		}
	}
	if top > g.vlogTop {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("store: sync: %w", err)
		}
	}
	g.vlogTop = top
	return nil
}

// commitValuesFirst commits txn and syncs the value log before any
// memtable log can be synced with its pointers. A failed value log sync
// sticks, as a failed syncNow does.
func (s *Store) commitValuesFirst(txn interface{ Commit() error }) error {
	g := &s.dsync
	g.order.Lock()
	defer g.order.Unlock()
	if err := txn.Commit(); err != nil {
		return err
	}
	if err := s.syncValueLog(); err != nil {
		return g.wal.fail(err)
	}
	return nil
}
