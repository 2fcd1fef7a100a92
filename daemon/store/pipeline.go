package store

import (
	"encoding/binary"
	"fmt"
	"slices"

	"meshd.dev/meshd/routing"
)

// ApplyAsync is Apply without the wait: it logs rd as one record of the
// store's write-ahead log (wal.go), and done reports (once) when the
// record is synced, or why it failed. Records are synced and applied to
// badger in the order ApplyAsync was called, so a caller may stage the
// next batch while the previous one syncs (the node loop's pipelined
// group commit); it must not act on a batch (send its frames, report its
// deliveries) before its done reported nil. The inbox sequence numbers
// are given at once.
//
// What could make badger refuse the batch later is refused here, before
// anything is logged: a record or delivery too big for one badger
// transaction (ErrBatchTooBig); a bigger batch is applied over several
// transactions. A batch bigger than half a log segment is logged as
// several records, split along the units (each delivery with its
// delivered record, as Apply describes); done reports when the last is
// synced.
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
	defer s.unitScratch.release()
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
	if s.cfg.beforeCommit != nil {
		if err := s.cfg.beforeCommit(); err != nil {
			return nil, nil, wrapTxnErr(err)
		}
	}
	if err := s.logUnits(units, ch); err != nil {
		return nil, nil, err
	}
	return seqs, ch, nil
}

// logUnits logs units as records of at most half a segment each (Store.mu
// held); ch gets the outcome of the last. Each record carries the inbox
// counter after its last entry. The counter moves on with each record:
// if a later one fails, the store has failed (sticky) and the node stops.
func (s *Store) logUnits(units []unit, ch chan<- error) error {
	maxRec := int(s.wal.segSize / 2)
	total := 0
	for _, u := range units {
		total += len(u)
	}
	// logOps encodes the ops and keeps none: one array serves every
	// record of every batch. Each record's ops are zeroed once logged
	// (only those: beyond them the array is zero already).
	defer func() { clear(s.logScratch); s.logScratch = s.logScratch[:0] }()
	for start := 0; start < len(units); {
		ops := slices.Grow(s.logScratch[:0], total+1)
		var next uint64
		entries, size := 0, walHeader+64
		end := start
		for ; end < len(units); end++ {
			n := walSize(units[end])
			if end > start && size+n > maxRec {
				break
			}
			size += n
			for _, o := range units[end] {
				ops = append(ops, o)
				if o.nextSeq != 0 {
					next = max(next, o.nextSeq)
					entries++
				}
			}
		}
		if next != 0 {
			ops = append(ops, op{key: []byte(keyInboxSeq), value: binary.BigEndian.AppendUint64(nil, next)})
		}
		var c chan<- error
		if end == len(units) {
			c = ch
		}
		s.logScratch = ops
		if err := s.logOps(ops, c); err != nil {
			return err
		}
		clear(ops)
		for _, u := range units[start:end] {
			total -= len(u)
		}
		if next != 0 {
			s.nextSeq = next
			s.inboxN += entries
		}
		start = end
	}
	return nil
}

// syncNow makes everything committed to badger so far durable (the
// writers outside the write-ahead log, and Open). A failure sticks, and
// fails the log too (wal.go checks the same sticky error).
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
