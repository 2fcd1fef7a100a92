package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// The store's own write-ahead log.
//
// Every write to the keys the log owns (walOwned: engine records, inbox
// entries, the inbox counter, FAPP records) is first appended to the log
// as one record per batch (walformat.go), one pwrite under the store's
// mutex. One goroutine at a time fdatasyncs the log (the group sync: one
// sync covers every record written before it began) and then reports the
// batches durable. Only then does a second goroutine, the applier, commit
// the records to badger, in log order, off the message path and without
// syncing badger. Badger is thus never ahead of the durable log: a power
// cut can leave badger holding any mix of the writes of records that are
// in the durable log (an older memtable log may lose entries a newer one
// keeps: badger's recovered state need not be a prefix of its commits),
// and replaying every record after the last checkpoint, in order,
// rewrites every key those records touched to its last value. Were badger
// allowed ahead of the log, a later batch's keys could survive in badger
// without their record and replay would leave a mix of two batches
// (TestWALMixedStateAttack).
//
// Reads that must see what was reported (Inbox, EngineRecords, Stats,
// FAPP reads, Backup) first wait until badger has applied every record
// written so far (waitApplied).
//
// Coalescing. The applier lets synced records queue until walApplyLag of
// them (or walApplyLagBytes) wait, or until someone needs badger current (waitApplied, which
// the readers above, Ack, FAPPWrite and Close call; the checkpointer;
// Backup through waitApplied), and then commits them together with their
// ops merged per key, the last op winning (coalesce): a custody record
// set and deleted a few batches later reaches badger as the delete
// alone, or not at all if badger never held it (applyOps), and a session
// record rewritten every batch as its last value. Nothing on the message
// path waits for the applier; a reader that needs badger current pays
// for the apply of what is queued (a few hundred microseconds,
// BenchmarkReadAfterLag), and Ack and FAPP writes with acknowledgements
// do so holding Store.mu, so the next batch waits as long. The argument above
// holds unchanged: the merged ops are those of synced records only, so
// badger is still never ahead of the durable log, and every key they
// touch is touched by a record after the checkpoint (a checkpoint covers
// only records the applier has finished), which replay rewrites to its
// last value. A crash in the middle of a group split over several
// transactions leaves some of its keys at their new values and others at
// their old ones, a state no prefix of the log had, which is the mix
// replay already repairs; readers never see it (they wait for the whole
// group, and Backup holds the applier out between groups). A delete left
// out because badger lacks the key changes nothing badger holds: the
// key is absent before and after the group, and replay, which applies
// record by record, sets and deletes it again.
//
// Segments. The log is two files, wal/seg-0 and wal/seg-1 (and wal/id,
// the log's random id every record carries, walformat.go), of segSize
// bytes each, written full of zeros and fsynced once when created and
// reused ever after: overwriting blocks that are already allocated and
// written makes fdatasync a data write only, while writing into a sparse
// or growing file also commits the file system's journal (on ext4 about
// 230 us instead of 100 us per sync, docs/performance.md). When the
// current segment cannot take the next record the writer moves to the
// other one from its start, and the checkpointer, off the message path,
// waits until badger applied every record of the full segment, makes
// badger durable (badgerDurable) and records the checkpoint (wal/
// checkpoint: every record <= seq is in badger). A writer that needs the
// other segment before its checkpoint is done waits (backpressure).
//
// Segment size: 16 MiB. A record of a batch of 36-38 messages is about
// 16-18 KB (a custody record of about 400 bytes and a few deletions per
// message), so a segment takes about a thousand batches and a checkpoint
// (a badger sync of a few ms) comes every second or so at full load
// and rarely otherwise; the two segments cost 32 MiB of disk, and opening
// replays at most 32 MiB, a few seconds on a Raspberry Pi's SD card. The
// one-time zero fill writes 32 MiB.
//
// Opening scans both segments (walScan), replays the records after the
// checkpoint in order, makes badger durable and moves the checkpoint past
// every record on disk; closing cleanly does the same, so a cleanly
// closed store has an empty log (what an older meshd, which ignores the
// log, needs; docs/operations.md).
//
// Failures. A failed log write or sync, or a badger commit of a record
// already reported (the applier), sticks: every later write and read
// fails, the node stops, and the next start replays the log. What can make
// a badger commit fail is checked before the record is logged: a
// record or delivery too big for one transaction is refused by ApplyAsync
// (ErrBatchTooBig), and the applier splits a record over as many
// transactions as badger needs.

const (
	walDirName      = "wal"
	walCkptName     = "checkpoint"
	walIDName       = "id"
	defaultSegSize  = 16 << 20
	walCkptFileSize = 8 + 4
	// walApplyLag is how many synced records the applier lets queue
	// before it applies them (docs/performance.md, "Fewer badger
	// writes").
	walApplyLag = 16
	// walApplyLagBytes bounds the bytes of the records queued for the
	// applier: past it, it applies whatever the count.
	walApplyLagBytes = 1 << 20
)

// walSegSize is the segment size of newly opened stores (tests shrink it
// to exercise rotation and checkpoints).
var walSegSize int64 = defaultSegSize

// ErrLogOwned: a write outside the log touched a key the log owns; a later
// replay could undo it. Nothing was written.
var ErrLogOwned = errors.New("store: key is written through the write-ahead log only")

// walOwned reports whether the log owns key: writes to it must go through
// the log, and the log writes no other key.
func walOwned(key []byte) bool {
	return bytes.HasPrefix(key, []byte(enginePrefix)) || bytes.HasPrefix(key, []byte(inboxPrefix)) ||
		bytes.HasPrefix(key, []byte(FAPPPrefix)) || string(key) == keyInboxSeq
}

// guardTxn is the transaction updateLocked hands out: it refuses writes to
// keys the log owns.
type guardTxn struct{ *badger.Txn }

func (g guardTxn) Set(k, v []byte) error {
	if walOwned(k) {
		return fmt.Errorf("%w: %q", ErrLogOwned, k)
	}
	return g.Txn.Set(k, v)
}

func (g guardTxn) Delete(k []byte) error {
	if walOwned(k) {
		return fmt.Errorf("%w: %q", ErrLogOwned, k)
	}
	return g.Txn.Delete(k)
}

// wlog is the open log.
type wlog struct {
	dir     string
	segSize int64
	segs    [2]*os.File
	noSync  bool
	id      uint64 // every record carries it (walformat.go)

	// The writer's state, guarded by Store.mu.
	cur     int       // segment written
	off     int64     // next write offset in it
	next    uint64    // seq of the next record
	segLast [2]uint64 // last seq written into each segment since its reuse

	// applying is held by the applier while it commits records to badger
	// (over several transactions if they do not fit in one), and by
	// Backup until its read transaction exists: a backup never holds
	// part of a record (TestWALBackupMidRecord).
	applying sync.Mutex

	mu           sync.Mutex
	cond         *sync.Cond   // waiters: applied, checkpointed, err moved
	syncCond     *sync.Cond   // the syncer: queue or stop
	applyCond    *sync.Cond   // the applier: applyQ or stop
	ckptCond     *sync.Cond   // the checkpointer: ckptWant, applied, stop
	queue        []walPending // written, waiting for a sync
	applyQ       []walPending // synced, waiting for the applier
	dirty        [2]bool      // segments written since the last sync began
	logged       uint64       // last record written
	durable      atomic.Uint64
	applied      uint64
	checkpointed uint64
	ckptWant     uint64
	applyWant    uint64 // someone needs badger to hold every record up to it
	lag          int    // records the applier lets queue (walApplyLag)
	err          error  // sticky failure
	stop         bool
	wg           sync.WaitGroup
	// Test hooks, set under mu. syncHook, if set, runs before each log sync (tests block or fail
	// syncs with it); applyHook before the applier applies records;
	// ckptHook between making badger durable and writing the
	// checkpoint. applyEarly (the mixed-state test's negative control
	// only) writes each record's ops into badger before the record is
	// logged: badger ahead of the log.
	syncHook    func() error
	applyHook   func() error
	ckptHook    func()
	commitHook  func() // after each of the applier's commits but the last of an apply
	backupHook  func() // Backup, before it takes its snapshot
	backupWaits func() // Backup waits for the applier to finish a record
	applyEarly  bool
	// applyTxns counts the applier's badger commits, ckpts the
	// checkpoints (tests).
	applyTxns, ckpts atomic.Int64
	stats            applierCounters

	// The applier's scratch space (applyRecords), and the record
	// buffers it gives back for reuse (recBuf).
	applyOps  []op
	applyLast map[string]int
	recPool   sync.Pool // of *[]byte

	// held answers for custody keys whether badger may hold them, so
	// that a merged delete badger cannot hold is left out without a
	// lookup (applyOps). Nil until the log has opened, and while the
	// applier runs without it (a rebuild failed, or applyEarly).
	held *heldFilter
	// heldSkips counts the merged deletes left out on the filter's word
	// alone (tests).
	heldSkips atomic.Int64
}

// walRecPoolMax is the largest record buffer kept for reuse: a batch's
// record is usually 16-31 KB; a rare big one is left to the collector.
const walRecPoolMax = 256 << 10

// recBuf returns an empty buffer with room for n bytes, reused if one
// was given back.
func (w *wlog) recBuf(n int) []byte {
	if p, _ := w.recPool.Get().(*[]byte); p != nil && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, 64<<10))
}

// putRecBuf gives back a record's buffer once nothing reads it.
func (w *wlog) putRecBuf(b []byte) {
	if cap(b) <= walRecPoolMax {
		w.recPool.Put(&b)
	}
}

// applierCounters count what the applier did since the store opened.
type applierCounters struct {
	applies, records, opsIn, opsOut, bytesOut atomic.Int64
}

// ApplierStats says what the write-ahead log's applier wrote to badger
// since the store opened: Applies groups of Records records, whose OpsIn
// writes (sets and deletes) it merged per key into OpsOut, of BytesOut
// key and value bytes.
type ApplierStats struct {
	Applies, Records, OpsIn, OpsOut, BytesOut int64
}

// ApplierStats returns the applier's counters.
func (s *Store) ApplierStats() ApplierStats {
	c := &s.wal.stats
	return ApplierStats{Applies: c.applies.Load(), Records: c.records.Load(), OpsIn: c.opsIn.Load(),
		OpsOut: c.opsOut.Load(), BytesOut: c.bytesOut.Load()}
}

// walPending is a written record: its seq, its encoding (the applier
// decodes its ops from it, so nothing the caller owns is kept) and the
// channel to report to (nil for the leading parts of a split batch).
type walPending struct {
	seq uint64
	rec []byte
	ch  chan<- error
}

// failLocked records err as the sticky failure (w.mu held) and returns
// the failure.
func (s *Store) walFailLocked(err error) error {
	w := s.wal
	if w.err == nil {
		w.err = s.dsync.wal.fail(err)
	}
	w.broadcastAll()
	return w.err
}

// broadcastAll wakes every goroutine and waiter of the log (w.mu held).
func (w *wlog) broadcastAll() {
	w.cond.Broadcast()
	w.syncCond.Broadcast()
	w.applyCond.Broadcast()
	w.ckptCond.Broadcast()
}

// failure returns the sticky failure, if any.
func (s *Store) walFailure() error {
	if err := s.dsync.wal.sticky(); err != nil {
		return err
	}
	w := s.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// logOps appends one record of ops to the log (Store.mu held) and queues
// it for the group sync; ch gets the outcome.
func (s *Store) logOps(ops []op, ch chan<- error) error {
	w := s.wal
	for _, o := range ops {
		if !walOwned(o.key) {
			return fmt.Errorf("store: %q is not a key of the write-ahead log", o.key)
		}
	}
	if err := s.walFailure(); err != nil {
		return err
	}
	if w.applyEarly {
		if _, err := s.applyOps(ops); err != nil {
			return err
		}
	}
	rec := appendWALRecord(w.recBuf(walSize(ops)), w.id, w.next, w.durable.Load(), ops)
	if int64(len(rec)) > w.segSize {
		return fmt.Errorf("%w: a log record of %d bytes (segment %d)", ErrBatchTooBig, len(rec), w.segSize)
	}
	if w.off+int64(len(rec)) > w.segSize {
		if err := s.walRotate(); err != nil {
			return err
		}
	}
	if _, err := w.segs[w.cur].WriteAt(rec, w.off); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		return s.walFailLocked(fmt.Errorf("store: write-ahead log: %w", err))
	}
	seq := w.next
	w.next++
	w.off += int64(len(rec))
	w.segLast[w.cur] = seq
	w.mu.Lock()
	w.queue = append(w.queue, walPending{seq: seq, rec: rec, ch: ch})
	w.dirty[w.cur] = true
	w.logged = seq
	w.syncCond.Signal()
	w.mu.Unlock()
	return nil
}

// walRotate moves the writer to the other segment (Store.mu held), asking
// for a checkpoint of the full one and waiting for the other one's.
func (s *Store) walRotate() error {
	w := s.wal
	other := 1 - w.cur
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ckptWant = max(w.ckptWant, w.segLast[w.cur])
	w.ckptCond.Signal()
	w.applyCond.Signal() // the checkpoint needs the applier now
	for w.err == nil && w.segLast[other] > w.checkpointed {
		w.cond.Wait()
	}
	if w.err != nil {
		return w.err
	}
	w.cur, w.off, w.segLast[other] = other, 0, 0
	return nil
}

// walSyncer is the group syncer: it syncs the segments written since the
// last sync began, reports the records queued before it began, and hands
// them to the applier.
func (s *Store) walSyncer() {
	w := s.wal
	defer w.wg.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.queue) == 0 && !w.stop {
			w.syncCond.Wait()
		}
		if len(w.queue) == 0 {
			return
		}
		batch, dirty, hook := w.queue, w.dirty, w.syncHook
		w.queue, w.dirty = nil, [2]bool{}
		w.mu.Unlock()
		err := s.walSyncSegs(dirty, hook)
		w.mu.Lock()
		if err != nil {
			s.walFailLocked(err)
		}
		if err = w.err; err == nil {
			w.durable.Store(batch[len(batch)-1].seq)
			w.applyQ = append(w.applyQ, batch...)
			w.applyCond.Signal()
		}
		for _, p := range batch {
			if p.ch != nil {
				p.ch <- err // buffered: never blocks
			}
		}
	}
}

// walSyncSegs fdatasyncs the segments marked dirty.
func (s *Store) walSyncSegs(dirty [2]bool, hook func() error) error {
	w := s.wal
	if hook != nil {
		if err := hook(); err != nil {
			return fmt.Errorf("store: write-ahead log sync: %w", err)
		}
	}
	if s.cfg.syncFault != nil {
		if err := s.cfg.syncFault(); err != nil {
			return fmt.Errorf("store: write-ahead log sync: %w", err)
		}
	}
	if w.noSync {
		return nil
	}
	for i, d := range dirty {
		if d {
			if err := datasync(w.segs[i]); err != nil {
				return fmt.Errorf("store: write-ahead log sync: %w", err)
			}
		}
	}
	return nil
}

// walApplier commits synced records to badger in log order.
func (s *Store) walApplier() {
	w := s.wal
	defer w.wg.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	checked := 0 // records queued at the last syncFiles
	for {
		for !w.stop && !w.applyDue() {
			if n := len(w.applyQ); n > checked && w.err == nil && !s.cfg.noSync {
				// A table badger flushed since the last apply must not
				// wait for the next one to get its directory entry
				// synced (see below): check at every sync, as when the
				// applier applied every sync's records.
				checked = n
				w.mu.Unlock()
				err := s.syncFiles()
				w.mu.Lock()
				if err != nil {
					s.walFailLocked(fmt.Errorf("store: write-ahead log applier: %w", err))
				}
				continue
			}
			w.applyCond.Wait()
		}
		if len(w.applyQ) == 0 {
			return
		}
		batch, hook := w.applyQ, w.applyHook
		w.applyQ, checked = nil, 0
		if w.err != nil {
			continue // the next start replays them
		}
		w.mu.Unlock()
		var err error
		if hook != nil {
			err = hook()
		}
		if err == nil {
			w.applying.Lock()
			err = s.applyRecords(batch)
			w.applying.Unlock()
		}
		if err == nil && !s.cfg.noSync {
			// Badger must stay openable after a power cut: the
			// directory entries of its new memtable logs and of the
			// tables it flushes are synced within an apply of their
			// appearance (durable.go), not only at the next checkpoint.
			err = s.syncFiles()
		}
		w.mu.Lock()
		if err != nil {
			s.walFailLocked(fmt.Errorf("store: applying the write-ahead log to badger: %w", err))
			continue
		}
		w.applied = batch[len(batch)-1].seq
		w.cond.Broadcast()
		if w.ckptWant > w.checkpointed {
			w.ckptCond.Signal()
		}
	}
}

// applyDue reports whether the applier should apply the queue now (w.mu
// held): walApplyLag records or walApplyLagBytes bytes wait, or a waiter, the checkpointer or a
// failure needs it, or the log stops. A waiter's record that is not yet
// synced is waited for, so that it is applied with the ones before it.
func (w *wlog) applyDue() bool {
	n := len(w.applyQ)
	if n == 0 {
		return false
	}
	if n >= w.lag || w.stop || w.err != nil {
		return true
	}
	size := 0
	for _, p := range w.applyQ {
		size += len(p.rec)
	}
	if size >= walApplyLagBytes {
		return true
	}
	last := w.applyQ[n-1].seq
	return (w.applyWant > w.applied && last >= w.applyWant) || (w.ckptWant > w.applied && last >= w.ckptWant)
}

// needApplied asks the applier to apply every record up to seq as soon as
// it is synced (w.mu held).
func (w *wlog) needApplied(seq uint64) {
	if seq > w.applyWant {
		w.applyWant = seq
		w.applyCond.Signal()
	}
}

// applyRecords commits the ops of records, merged per key (coalesce), in
// as few badger transactions as they fit in.
// The applier decodes into one array and merges with one map, both kept
// for the next group, and gives the records' buffers back to logOps
// (recBuf) once badger has committed their ops: badger copies what it
// commits (the memtable), and nothing else reads a record once applied.
func (s *Store) applyRecords(batch []walPending) error {
	w := s.wal
	ops := w.applyOps[:0]
	for _, p := range batch {
		r, err := decodeWALRecordTo(ops, p.rec, w.id)
		if err != nil {
			return err
		}
		ops = r.ops
	}
	in := len(ops)
	if w.applyLast == nil {
		w.applyLast = map[string]int{}
	}
	tally, err := s.applyOps(coalesce(ops, w.applyLast))
	if in > scratchMapMax {
		w.applyLast = nil // cleared by coalesce; dropped so that later clears stay cheap
	}
	clear(ops[:in]) // drop the references into the records
	w.applyOps = ops[:0]
	if err == nil {
		for _, p := range batch {
			w.putRecBuf(p.rec)
		}
	}
	c := &s.wal.stats
	c.applies.Add(1)
	c.records.Add(int64(len(batch)))
	c.opsIn.Add(int64(in))
	c.opsOut.Add(tally.ops)
	c.bytesOut.Add(tally.bytes)
	return err
}

// coalesce merges ops per key, in place: of the ops on one key only the
// last is kept, at its position, and a delete into which a set was merged
// is marked (mergedSet). Applying the result leaves every key as applying
// ops in order does.
//
// last is scratch space, empty on entry and on return.
func coalesce(ops []op, last map[string]int) []op {
	if len(ops) < 2 {
		return ops
	}
	defer clear(last)
	for i, o := range ops {
		last[string(o.key)] = i
	}
	if len(last) == len(ops) {
		return ops
	}
	out := ops[:0]
	for i, o := range ops {
		j := last[string(o.key)]
		if j == i {
			out = append(out, o)
		} else if !o.del && ops[j].del {
			ops[j].mergedSet = true // ops[j] is after ops[i]: not yet moved
		}
	}
	clear(ops[len(out):]) // drop the references to the values merged away
	return out
}

// applyTally counts the ops applyOps wrote and their key and value bytes.
type applyTally struct{ ops, bytes int64 }

// applyOps writes ops into badger, unsynced, committing whenever a
// transaction is full. A crash in the middle leaves badger with part of
// them: the log replays them all. A delete into which a set was merged
// (a custody record set and deleted within one group) is left out when
// badger does not hold the key: the key ends absent either way, and only
// the applier writes the log's keys, so none can appear meanwhile. For a
// custody key the applier's heldFilter answers first (held.go); badger
// is asked only when the filter says it may hold the key.
func (s *Store) applyOps(ops []op) (applyTally, error) {
	var tally applyTally
	vlog := s.dsync.wrote([]unit{ops})
	held := s.wal.held
	if s.wal.applyEarly {
		held = nil // the negative control writes from two goroutines
	}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, o := range ops {
		covered := held != nil && held.covers(o.key)
		if o.mergedSet {
			if covered && !held.mayHold(o.key) {
				s.wal.heldSkips.Add(1)
				continue
			}
			if _, err := txn.Get(o.key); errors.Is(err, badger.ErrKeyNotFound) {
				continue
			} else if err != nil {
				return tally, err
			}
		}
		if covered && !o.del {
			held.add(o.key) // before the commit: badger may hold it from now on
		}
		err := setOrDelete(txn, o)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := s.commitApply(txn); err != nil {
				return tally, err
			}
			if hook := s.wal.commitHook; hook != nil {
				hook()
			}
			txn = s.db.NewTransaction(true)
			err = setOrDelete(txn, o)
		}
		if err != nil {
			return tally, err
		}
		tally.ops++
		tally.bytes += int64(len(o.key) + len(o.value))
	}
	if err := s.commitApply(txn); err != nil {
		return tally, err
	}
	if vlog {
		s.dsync.wal.mayUseVlog() // written now (walsync.go)
	}
	if held != nil && held.full() {
		s.rebuildHeld()
	}
	return tally, nil
}

// rebuildHeld builds the applier's heldFilter again from badger, which
// holds every applied op now. If badger cannot be read the applier goes
// on without a filter (every merged delete asks badger, as before).
func (s *Store) rebuildHeld() {
	f, err := s.buildHeld()
	if err != nil {
		s.cfg.logger.Warn("store: cannot rebuild the filter of custody keys; asking badger instead", "err", err)
	}
	s.wal.held = f
}

func (s *Store) commitApply(txn *badger.Txn) error {
	s.wal.applyTxns.Add(1)
	return txn.Commit()
}

func setOrDelete(txn *badger.Txn, o op) error {
	if o.del {
		return txn.Delete(o.key)
	}
	return txn.Set(o.key, o.value)
}

// walCheckpointer makes badger durable up to the requested records and
// records the checkpoint, off the message path.
func (s *Store) walCheckpointer() {
	w := s.wal
	defer w.wg.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for !w.stop && w.err == nil && (w.ckptWant <= w.checkpointed || w.applied < w.ckptWant) {
			w.ckptCond.Wait()
		}
		if w.stop || w.err != nil {
			return
		}
		want := w.ckptWant
		w.mu.Unlock()
		err := s.walCheckpoint(want)
		w.mu.Lock()
		if err != nil {
			s.walFailLocked(err)
			return
		}
		w.checkpointed = max(w.checkpointed, want)
		w.cond.Broadcast()
	}
}

// walCheckpoint makes badger durable and records that every record up to
// seq is in it.
func (s *Store) walCheckpoint(seq uint64) error {
	s.wal.ckpts.Add(1)
	if err := s.badgerDurable(); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	s.wal.mu.Lock()
	hook := s.wal.ckptHook
	s.wal.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := writeCheckpoint(s.wal.dir, seq, s.wal.noSync); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// discardName is badger's file of garbage counts per value log file
// (its discard statistics), which it writes through a mapping and syncs
// only when it closes. A compaction counts a value once, when it drops
// it: counts a power cut loses leave their garbage in the value log for
// good, where the GC never looks (TestPowerLossDiscardStats). So
// badgerDurable syncs it too: the counts of the compactions before a
// checkpoint survive (those after it, until the next, can still be
// lost: a node writing fast checkpoints every second or so).
const discardName = "DISCARD"

// badgerDurable makes everything badger holds durable: DB.Sync (the
// current memtable log and value log), its garbage counts (discardName),
// every memtable log (an older one
// may not be flushed yet), the value log files badger may have started
// since the last run (durable.go) and the directory (new logs and
// tables). A
// memtable log badger creates between the directory read and the
// directory sync would be on disk by name but not by size (badger then
// refuses to open: "while opening fid"), so the store reads the
// directory again after syncing it, until no new log turned up.
func (s *Store) badgerDurable() error {
	if s.cfg.noSync {
		return nil
	}
	s.dsync.order.RLock() // vlogorder.go
	defer s.dsync.order.RUnlock()
	if err := s.db.Sync(); err != nil {
		return err
	}
	if err := syncFile(filepath.Join(s.dir, discardName)); err != nil {
		return err
	}
	synced := map[string]bool{}
	from := s.dsync.durableVlog.Load()
	for {
		ents, err := os.ReadDir(s.dir)
		if err != nil {
			return err
		}
		fresh := false
		for _, e := range ents {
			n := e.Name()
			vfid, vlog := vlogNumber(n)
			if (strings.HasSuffix(n, ".mem") || (vlog && int64(vfid) >= from)) && !synced[n] {
				if err := syncFile(filepath.Join(s.dir, n)); err != nil {
					return err
				}
				synced[n], fresh = true, true
			}
			if vlog && int64(vfid) > s.dsync.durableVlog.Load() {
				s.dsync.durableVlog.Store(int64(vfid))
			}
		}
		if !fresh {
			return nil
		}
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
}

// waitApplied waits until badger holds every record written so far:
// what was reported durable, and also what was staged and not yet
// synced (as before the log, when a staged batch was in badger at once;
// a reader that asked after staging sees it). Writers that read before
// they log (Ack, FAPPWrite) call it with Store.mu held, so no record
// comes in between.
func (s *Store) waitApplied() error {
	w := s.wal
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.logged
	w.needApplied(target)
	for w.err == nil && w.applied < target {
		w.cond.Wait()
	}
	return w.err
}

// logAndWait logs ops as one record (Store.mu held), releases Store.mu and
// waits for the record's sync.
func (s *Store) logAndWait(ops []op) error {
	ch := make(chan error, 1)
	err := s.logOps(ops, ch)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return <-ch
}

// walClose drains the log, stops its goroutines, takes the last
// checkpoint (unless the store failed: then the next start replays) and
// closes the segments (Store.mu held, no writer can come).
func (s *Store) walClose() error {
	w := s.wal
	w.mu.Lock()
	w.needApplied(w.logged)
	for w.err == nil && w.applied < w.logged {
		w.cond.Wait()
	}
	w.stop = true
	w.broadcastAll()
	w.mu.Unlock()
	w.wg.Wait()
	err := w.err
	if err == nil && w.logged > w.checkpointed {
		err = s.walCheckpoint(w.logged)
	}
	for _, f := range w.segs {
		if f != nil {
			f.Close()
		}
	}
	return err
}

// Checkpoint file: seq u64 LE, CRC-32C of it u32 LE; written to a
// temporary file, synced and renamed into place, so it is old or new.

func readCheckpoint(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, walCkptName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: checkpoint: %w", err)
	}
	if len(b) != walCkptFileSize || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("%w: checkpoint file %x", ErrWALCorrupt, b)
	}
	return binary.LittleEndian.Uint64(b), nil
}

func writeCheckpoint(dir string, seq uint64, noSync bool) error {
	b := binary.LittleEndian.AppendUint64(nil, seq)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(dir, walCkptName+".tmp")
	if err := writeFileSynced(tmp, b, noSync); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walCkptName)); err != nil {
		return err
	}
	if noSync {
		return nil
	}
	return syncDir(dir)
}

func writeFileSynced(name string, b []byte, noSync bool) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = writeChunked(f, b)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// walWriteChunk is the most writeFileSynced hands the kernel in one write.
// The page cache sizes a file's folios by the writes that fill it: a new
// segment written in one 16 MiB write is cached in folios of up to 2 MiB
// (ext4 on Linux 6.x), and every later record's pwrite into such a folio,
// after a sync cleaned it, walks the whole folio's block buffers (about 8
// µs more per 16 KB record than with 64 KiB folios, docs/performance.md
// "Session 14"). Written in 64 KiB pieces the segment is cached in folios
// of at most 64 KiB.
const walWriteChunk = 64 << 10

// writeChunked writes b to w in pieces of at most walWriteChunk bytes.
func writeChunked(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), walWriteChunk)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
