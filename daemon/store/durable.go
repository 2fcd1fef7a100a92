package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Badger's own sync (DB.Sync) makes durable only the current memtable's
// log file and the value log. Two things it leaves out, both after badger
// moved to a new memtable (every MemTableSize bytes written):
//   - the directory entry of the new memtable's log: the file's contents
//     are synced but, until its directory is, a power cut can leave no
//     file at all, and every batch in it is lost;
//   - the previous memtable's log, now flushed to a table in the
//     background: a batch written to it just before the switch and
//     reported after the next DB.Sync was on stable storage only once the
//     flush was done.
// So after DB.Sync (or its own sync of the current memtable log,
// walsync.go) the store checks for a switch, and when there was one
// it syncs every memtable log and the directory itself
// (TestPowerLossMemtableRotation lost a memtable's worth of acknowledged
// batches without it).
//
// The previous memtable is flushed to a table file, whose directory entry
// badger does not sync either (TestPowerLossMemtableRotation then found a
// store that would not open: "file does not exist for table 1"); so while
// the last read saw more than one memtable log, every sync reads the
// directory again, until the flushed log is gone and the table, created
// before, was seen and its directory synced. (Tables from compactions
// badger syncs itself.)
//
// The check is one stat, not a directory read (which cost about 4 % of
// the daemon's CPU under load, docs/performance.md): badger numbers its
// memtable logs 1, 2, 3, ... ("00007.mem"), one more for each new
// memtable, so a switch since the last full check shows as the log
// numbered one past the highest the check saw. Only if that log could
// have come and gone again between two checks (a whole memtable written
// into it, then flushed and deleted) would the stat miss it, so the
// store also reads the directory once the writes since its last read
// could fill half a memtable: it counts what it commits, every record as
// its key and value plus memOverhead (more than badger's skiplist node
// and log header take for it), every transaction as two records more
// (badger's commit marker, the inbox counter), and a transaction whose records it does not
// see (updateLocked) as two of badger's largest batches. While the value
// log GC runs (it rewrites values into memtables behind the store's back)
// every check reads the directory, and so does the first one after it.

// memOverhead is what the count adds per record and per transaction.
const memOverhead = 256

// dirSync remembers the directory's file names at the last full check,
// the highest memtable log number among them, and the bytes counted up to
// it.
type dirSync struct {
	mu     sync.Mutex
	names  []string
	memFid int
	next   string // the path of log memFid+1
	// vlogNext is the path of the value log file one past the highest
	// the last read saw (see vlogSeen).
	vlogNext string
	mems     int // memtable logs seen: more than one means a flush is due
	atRead   int64
	// durableVlog is the highest value log file number badgerDurable
	// saw; it syncs that one and the newer ones (see vlogSeen).
	durableVlog atomic.Int64
	// written is the running count of committed bytes (see above);
	// opaque counts the value log GC runs under way.
	written atomic.Int64
	opaque  atomic.Int32
	// reads counts the directory reads (tests).
	reads int
	// order: the writers that need their values synced before their
	// pointers hold it to write, the syncs of memtable logs to read
	// (vlogorder.go); vlogTop is the highest value log file number
	// syncValueLog saw (guarded by order's write lock).
	order   sync.RWMutex
	vlogTop int
	wal     walSync // walsync.go
}

// wroteOpaque counts a transaction whose records the store does not see.
// The caller notes its possible value log write (g.wal.mayUseVlog) once
// it is committed: a DB.Sync that began before it was written does not
// cover it.
func (g *dirSync) wroteOpaque(maxBatch int64) {
	g.written.Add(2*maxBatch + memOverhead)
}

// gcStarts and gcEnds bracket a value log GC run.
func (g *dirSync) gcStarts() { g.opaque.Add(1) }

func (g *dirSync) gcEnds(memTableSize int64) {
	g.written.Add(memTableSize)
	g.wal.mayUseVlog() // what it rewrote is covered by the next DB.Sync
	g.opaque.Add(-1)
}

// wrote counts a transaction's records, for syncFiles, before it is
// committed. It reports whether one may go to the value log: the caller
// then notes it (g.wal.mayUseVlog) once the transaction is written, not
// before, since a DB.Sync that began before the write does not cover it.
func (g *dirSync) wrote(units []unit) (vlog bool) {
	n := int64(2 * memOverhead)
	for _, u := range units {
		for _, o := range u {
			n += int64(len(o.key) + len(o.value) + memOverhead)
			vlog = vlog || len(o.value) >= g.wal.threshold
		}
	}
	g.written.Add(n)
	return vlog
}

// syncFiles syncs the memtable logs and the directory if badger switched
// memtables since the last time.
func (s *Store) syncFiles() error {
	g := &s.dsync
	g.order.RLock()
	defer g.order.RUnlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	written := g.written.Load()
	if g.names != nil && g.mems <= 1 && g.opaque.Load() == 0 && written-g.atRead < s.cfg.memTableSize/2 &&
		absent(g.next) && absent(g.vlogNext) {
		return nil
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	g.atRead = written
	g.reads++
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if slices.Equal(names, g.names) {
		return nil
	}
	memFid, mems, vlogFid := 0, 0, 0
	for _, n := range names {
		if fid, ok := vlogNumber(n); ok {
			vlogFid = max(vlogFid, fid)
			if !slices.Contains(g.names, n) {
				if err := syncFile(filepath.Join(s.dir, n)); err != nil {
					return fmt.Errorf("store: sync: %w", err)
				}
			}
		}
		if fid, ok := strings.CutSuffix(n, ".mem"); ok {
			mems++
			if err := syncFile(filepath.Join(s.dir, n)); err != nil {
				return fmt.Errorf("store: sync: %w", err)
			}
			if v, err := strconv.Atoi(fid); err == nil {
				memFid = max(memFid, v)
			}
		}
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	g.names, g.memFid, g.mems = names, memFid, mems
	g.next = filepath.Join(s.dir, fmt.Sprintf("%05d.mem", memFid+1))
	g.vlogNext = filepath.Join(s.dir, fmt.Sprintf("%06d.vlog", vlogFid+1))
	return nil
}

// Value log files. Badger writes values of ValueThreshold bytes or more
// (inbox entries, custody records, channel history: badgerOptions) to its
// value log, "000007.vlog", and starts the next file (numbered one more)
// every ValueLogFileSize bytes and at every open; it syncs a full file's
// contents when it moves on (even without SyncWrites: the file is
// truncated to its length through an msync) but syncs neither a new
// file nor the directory entry. A write acknowledged after DB.Sync (the
// current file) could thus sit in a file a power cut removes, and a
// directory sync that comes before the new file's first sync leaves a
// file of 0 bytes, which badger refuses to open. So syncFiles also
// checks for the file one past the highest it saw (one more stat), and
// when there is a new one syncs it before the directory; badgerDurable
// syncs the file that was the newest at its last run and every newer
// one. (An empty file left anyway, by a cut between the directory read
// and the directory sync, is repaired at open: memempty.go.)

// vlogNumber returns the number of the value log file named n.
func vlogNumber(n string) (int, bool) {
	fid, ok := strings.CutSuffix(n, ".vlog")
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(fid)
	return v, err == nil
}

// absent reports whether no file named path exists (an error other than
// its absence counts as present: the caller then reads the directory).
func absent(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// syncFile fsyncs a file; one that is gone was flushed (or deleted) by
// badger in the meantime.
func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
