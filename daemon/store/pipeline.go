package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// ApplyAsync is Apply without the wait: it stages rd and hands it to
// badger's writer, and done reports (once) when the batch is synced, or
// why it failed. Batches are written in the order ApplyAsync was called,
// so a caller may stage the next batch while the previous one syncs (the
// node loop's pipelined group commit); it must not act on a batch (send
// its frames, report its deliveries) before its done reported nil. The
// inbox sequence numbers are given at once. A batch too big for one
// transaction is written by Apply's split path before ApplyAsync returns.
func (s *Store) ApplyAsync(rd *routing.Ready) (seqs []uint64, done <-chan error, err error) {
	ch := make(chan error, 1)
	for _, r := range rd.Persist {
		if err := checkEngineKey(r.Key); err != nil {
			return nil, nil, err
		}
	}
	for _, k := range rd.Deletes {
		if err := checkEngineKey(k); err != nil {
			return nil, nil, err
		}
	}
	if len(rd.Persist) == 0 && len(rd.Deletes) == 0 && len(rd.Deliveries) == 0 {
		ch <- nil
		return nil, ch, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	units, seqs, err := s.units(rd)
	if err != nil {
		return nil, nil, err
	}
	limit := s.db.MaxBatchSize() / 2
	for _, u := range units {
		if u.size() > limit {
			return nil, nil, fmt.Errorf("%w: %d bytes in one record or delivery (limit %d)", ErrBatchTooBig, u.size(), limit)
		}
	}
	err = s.commitAsync(units, ch)
	if errors.Is(err, badger.ErrTxnTooBig) {
		err = s.commitSplit(units)
		ch <- err
	}
	if err != nil {
		return nil, nil, wrapTxnErr(err)
	}
	return seqs, ch, nil
}

// commitAsync stages units in one transaction and commits it without
// waiting; ch gets the outcome. It fails with badger.ErrTxnTooBig, having
// written nothing, if they do not fit. The inbox counter moves on at once:
// a later batch numbers its entries after these, and if this one fails the
// node stops (a failed store is fatal).
func (s *Store) commitAsync(units []unit, ch chan<- error) error {
	txn := s.db.NewTransaction(true)
	next, entries, err := stage(txn, units)
	if err == nil && s.cfg.beforeCommit != nil {
		err = s.cfg.beforeCommit()
	}
	if err != nil {
		txn.Discard()
		return err
	}
	vlog := s.dsync.wrote(units)
	s.gsync.inflight.Add(1)
	txn.CommitWith(func(err error) {
		defer s.gsync.inflight.Done()
		if err != nil {
			ch <- wrapTxnErr(fmt.Errorf("commit: %w", err))
			return
		}
		if vlog {
			s.dsync.wal.mayUseVlog() // written now (walsync.go)
		}
		s.queueSync(ch)
	})
	if next != 0 {
		s.nextSeq = next
		s.inboxN += entries
	}
	return nil
}

// stage writes units and the inbox counter into txn.
func stage(txn *badger.Txn, units []unit) (next uint64, entries int, err error) {
	for _, u := range units {
		for _, o := range u {
			if o.del {
				err = txn.Delete(o.key)
			} else {
				err = txn.Set(o.key, o.value)
			}
			if err != nil {
				return 0, 0, err
			}
			if o.nextSeq != 0 {
				next = max(next, o.nextSeq)
				entries++
			}
		}
	}
	if next != 0 {
		err = txn.Set([]byte(keyInboxSeq), binary.BigEndian.AppendUint64(nil, next))
	}
	return next, entries, err
}

// Group sync. Badger writes with SyncWrites off (badgerOptions), and the
// store syncs itself: a synchronous writer syncs after its commit
// (s.syncNow), and the batches ApplyAsync staged share syncs. A batch's
// commit callback runs once badger has written it to the memtable's log;
// the callback queues the batch's report, and one goroutine at a time
// syncs the log (syncNow) and reports every batch queued before the sync
// began. While one sync runs, the batches staged meanwhile queue up and
// the next sync covers them all: one sync per group, not per batch.
type groupSync struct {
	mu      sync.Mutex
	waiting []chan<- error
	running bool
	wg      sync.WaitGroup
	// inflight counts batches badger has not called back for yet: Close
	// waits for them (their callbacks start syncs) before it waits for
	// the syncs and closes the database under them.
	inflight sync.WaitGroup
}

// queue hands a written batch's report channel to the syncer.
func (s *Store) queueSync(ch chan<- error) {
	g := &s.gsync
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting = append(g.waiting, ch)
	if !g.running {
		g.running = true
		g.wg.Add(1)
		go s.runSync()
	}
}

func (s *Store) runSync() {
	g := &s.gsync
	defer g.wg.Done()
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := s.syncNow()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// syncNow makes everything committed so far durable (a synchronous
// writer's commit).
func (s *Store) syncNow() error {
	if s.cfg.noSync {
		return nil
	}
	if err := s.dsync.wal.sticky(); err != nil {
		return err
	}
	if err := s.syncOnce(); err != nil {
		return s.dsync.wal.fail(err) // walsync.go
	}
	return nil
}

// syncOnce is one sync of the logs and, after a memtable switch, of the
// files and the directory.
func (s *Store) syncOnce() error {
	if s.cfg.syncFault != nil {
		if err := s.cfg.syncFault(); err != nil {
			return fmt.Errorf("store: sync: %w", err)
		}
	}
	if err := s.syncLogs(); err != nil { // walsync.go
		return fmt.Errorf("store: sync: %w", err)
	}
	return s.syncFiles() // durable.go
}
