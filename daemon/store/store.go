// Package store is meshd's persistence layer: one badger database in the
// data directory holding the routing engine's records and the application
// inbox, written so that nothing the daemon acknowledged is lost, even on
// kill -9.
//
// The node loop hands every routing.Ready to the store before it transmits
// or notifies anything (step 1 of the Ready contract). Apply writes the
// engine's records, deletes the records the engine released and appends the
// Ready's deliveries to the inbox as one record of the store's own
// write-ahead log (wal.go), synced: when Apply returns nil the whole batch
// is on disk, and when it returns an error before anything was logged none
// of it is. Badger gets the batch after the log record is synced, off the
// message path, in log order; a restart replays the log records badger may
// lack. ApplyAsync logs a batch the same way and reports on a channel when
// it is synced, so the loop can stage the next batch meanwhile; batches
// logged while a sync runs share the next sync (wal.go).
//
// The log owns the keys e/, i/, f/ and m/inbox-seq: every write to them
// goes through it (Apply, ApplyAsync, Ack, FAPPWrite), and the writers
// outside it (channels, contacts, known peers) are refused those keys
// (guardTxn), so that no replay can undo them.
//
// # Keys
//
//	m/version        1 byte: the store's format version (2; Open
//	                 rewrites 1 as 2 unless KeepFormat, see
//	                 formatVersion)
//	m/inbox-seq      8 bytes big endian: the next inbox sequence number
//	e/<engine key>   an engine record (routing.Record), e.g. e/c/<id hex>,
//	                 e/d/<order hex>, e/seq; see docs/routing.md section 9
//	i/<seq>          an inbox entry; <seq> is 8 bytes big endian, so key
//	                 order is delivery order
//	k/, h/, m/channel-seq
//	                 joined broadcast channels (their secret keys) and
//	                 their message history; see channels.go
//	f/               FAPP: the index of followed regions, the own offer
//	                 and its announce sequence, credentials, revocation
//	                 lists, followed regions, reservations; see fapp.go
//
// Inbox entries are encoded as described at EncodeInboxEntry. Sequence
// numbers start at 1, grow by one per delivery, survive restarts (the
// counter is written in the same transaction as the entries) and are never
// reused, even after the entries are acknowledged.
//
// Everything read back from disk is treated as outside input: a malformed
// key or value yields an error wrapping ErrCorrupt, never a panic.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Errors.
var (
	// ErrLocked: the data directory is held by another process.
	ErrLocked = errors.New("store: data directory is locked (is another meshd running on it?)")
	// ErrCorrupt: a key or value read from disk is malformed.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrBatchTooBig: a Ready does not fit in one badger transaction; nothing
	// was written.
	ErrBatchTooBig = errors.New("store: batch too big for one transaction")
	// ErrBadKey: an engine record key is empty, too long or not printable
	// ASCII; nothing was written.
	ErrBadKey = errors.New("store: bad engine record key")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrVersion: the data directory was written by an incompatible meshd.
	ErrVersion = errors.New("store: unsupported format version")
)

// Key prefixes and fixed keys.
const (
	enginePrefix = "e/"
	inboxPrefix  = "i/"
	keyVersion   = "m/version"
	keyInboxSeq  = "m/inbox-seq"
	// The store's format versions. 2: the engine keys its delivered
	// records on their delivery order (routing: "d/<16 hex digits>", the
	// envelope key in the value); version 1 stores may hold the older
	// "d/<32 hex digits>" records, which this meshd reads. A meshd that
	// reads version 1 only would skip the newer records as damaged and
	// could deliver a message twice: it refuses a version 2 store
	// (ErrVersion), and Open writes version 2 over 1.
	formatVersionV1 = 1
	formatVersion   = 2
	// MaxEngineKeyLen bounds engine record keys (the engine's are at most
	// 34 bytes).
	MaxEngineKeyLen = 256
)

// config is what the options set.
type config struct {
	logger       *slog.Logger
	memTableSize int64
	now          func() time.Time
	// beforeCommit, if set, runs after a batch is staged and before it is
	// committed; an error aborts the batch (tests simulate failures with
	// it).
	beforeCommit func() error
	// afterCount, if set, runs once a transaction is counted for the
	// sync and before it is committed (tests run a concurrent sync there).
	afterCount func()
	// syncFault, if set, runs before each sync; an error stands for the
	// sync's failure (tests: the kernel reports a failed write-back once).
	syncFault func() error
	// minFree and freeSpace: the free-space reserve and its probe (see
	// WithMinFree, upkeep.go).
	minFree   int64
	freeSpace func(dir string) (uint64, error)
	// noSync, for the power-loss test's negative control only, leaves
	// commits unsynced.
	noSync bool
	// keepFormat: Open leaves an older format version as it is (see
	// KeepFormat).
	keepFormat bool
	// badgerTweak, if set, changes badger's options (tests: small
	// level-0 limits, to reach compactions with little data).
	badgerTweak func(badger.Options) badger.Options
	// gcRewrote, if set, runs after each file the value log GC
	// rewrote (tests).
	gcRewrote func()
}

// Option configures Open.
type Option func(*config)

// WithLogger routes badger's log lines to l. Badger's errors and warnings
// keep their levels; its informational chatter (tables opened, compactions)
// is logged at debug level. Default: slog.Default(). Pass a logger with a
// discarding handler to silence badger entirely.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMemTableSize sets badger's memtable size. It also bounds one Apply:
// badger refuses transactions bigger than 15% of a memtable (about 1.2 MB
// with the default 8 MiB). Default: 8 MiB.
func WithMemTableSize(n int64) Option { return func(c *config) { c.memTableSize = n } }

// WithClock sets the clock that stamps inbox entries with their received
// time. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// KeepFormat makes Open leave an older store's format version as it is
// instead of moving it to the current one (formatVersion), for a caller
// that writes no engine records: meshd backup of a stopped node, whose
// data directory and backup must stay readable by the meshd that wrote
// them. Such a store must not be given an engine's batches (Apply).
func KeepFormat() Option { return func(c *config) { c.keepFormat = true } }

// Store is an open data directory. Its methods are safe for concurrent use;
// writers (Apply, Ack) are serialized.
type Store struct {
	db  *badger.DB
	cfg config
	dir string
	// long is held (read) by the long readers that run beside the writers
	// (Backup, GC); Close takes it to wait for them, so badger is never
	// closed under them.
	long sync.RWMutex

	mu      sync.Mutex // serializes writers; guards the fields below
	nextSeq uint64     // next inbox sequence number
	inboxN  int        // number of inbox entries
	closed  bool
	wal     *wlog   // wal.go
	dsync   dirSync // durable.go
	// Scratch space of ApplyAsync: the ops of a batch (units) and of the
	// record logUnits is building.
	unitScratch unitScratch
	logScratch  []op
	// Channel history: the next sequence number (0 until first read) and
	// the number of entries per channel (counted on first use).
	histSeq uint64
	histN   map[protocol.ChannelID]int
}

// badgerOptions are the badger settings, chosen for a small single-board
// computer (a Raspberry Pi with 512 MB - 1 GB of RAM, 32- or 64-bit) and a
// database of at most a few hundred MB:
//
//   - SyncWrites off: the batches of the engine, the inbox and FAPP are
//     durable in the store's own write-ahead log before they are reported
//     (wal.go), and badger is made durable at each checkpoint; the other
//     writers (channels, contacts, peers) sync badger after their commit
//     (syncNow), so what they acknowledged survives kill -9 and power
//     loss.
//   - MemTableSize 8 MiB (default 64 MiB) and NumMemtables 2 (default 5):
//     at most ~16 MiB of memtables instead of ~320 MiB.
//   - Compression off and BlockCacheSize 0 (default Snappy and 256 MiB): the
//     values are mostly sealed envelopes, which do not compress, and without
//     compression badger reads tables through mmap, so a block cache only
//     costs memory (badger's own advice).
//   - IndexCacheSize 0: table indexes stay in memory, which is small for a
//     database of this size.
//   - ValueLogFileSize 64 MiB (default 1 GiB): badger maps value log files;
//     1 GiB mappings do not fit well in a 32-bit address space.
//   - ValueThreshold 128 bytes (badger's default 1 MiB): inbox entries
//     (a 131-byte header and the body), custody records (~400 B - 1.4 KB),
//     channel history entries and known-peer records go to badger's value
//     log, written once; the LSM tree holds a 12-byte pointer for each,
//     and keeps the small hot records (delivered records of ~54 B,
//     counters, channel and contact records, small FAPP records). With
//     every value in the LSM tree each byte went through the memtable log,
//     the skiplist, a level-0 table and compactions: the recipient spent a
//     third of its CPU in badger (docs/performance.md, "Session 16"). The
//     cost: deleted values leave garbage in the value log that only its GC
//     reclaims (GC, upkeep.go, which the daemon runs every
//     store.gc_interval), and a power cut can keep a pointer whose value
//     was lost: for the write-ahead log's keys replay writes them again
//     (wal.go), writes outside the log and the GC's rewrites sync their
//     values before any memtable log is synced (vlogorder.go), the store
//     syncs the value log files badger starts (durable.go, memempty.go),
//     and badger reads a lost value as empty
//     (logged), which the readers treat as a damaged record.
//   - NumLevelZeroTables 1 (default 5): badger learns that a value in the
//     value log is garbage only when a compaction drops its pointer (its
//     discard statistics), and its GC rewrites only files it knows to be
//     half garbage. With pointers only, a memtable holds some 80,000
//     records and level 0 waited for five of them before its first
//     compaction: a long run wrote 280 MB, of which nothing was live at
//     the end, and the GC found nothing to reclaim (docs/performance.md,
//     "Store size over a long run"). Compacting level 0 at each flush
//     lets the GC (every store.gc_interval, 1 minute) reclaim the
//     garbage one memtable later; level 0 is small (pointers, delivered
//     records), so the compactions are too.
//   - VerifyValueChecksum on: a value read from the value log is checked
//     against its CRC, so a pointer into bytes that are not its value
//     reads as empty, not as another value.
//   - NumCompactors 2, NumGoroutines 2 (defaults 4 and 8): a Pi has four
//     small cores and the write rate is modest.
//   - BlockSize 16 KiB (default 4 KiB): fewer blocks per table to build
//     and index (docs/performance.md, "Session 15"); a read from a table
//     touches a 16 KiB block.
//   - DetectConflicts off: the store serializes its writers itself.
//   - MetricsEnabled off: badger's expvar metrics are not exported; Stats
//     reports what the daemon needs.
//   - Logger: slog, see WithLogger.
func badgerOptions(dir string, c *config) badger.Options {
	o := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithMemTableSize(c.memTableSize).
		WithNumMemtables(2).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithBlockSize(16 << 10).
		WithValueThreshold(128).
		WithVerifyValueChecksum(true).
		WithNumLevelZeroTables(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(slogLogger{c.logger})
	if c.badgerTweak != nil {
		o = c.badgerTweak(o)
	}
	return o
}

// Open opens (creating if needed) the store in dir. If another process holds
// the directory the error wraps ErrLocked.
func Open(dir string, opts ...Option) (*Store, error) {
	c := config{memTableSize: 8 << 20, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.freeSpace == nil {
		c.freeSpace = freeSpaceOS
	}
	if err := MkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := openBadger(dir, &c)
	if err != nil {
		// badger formats its lock error as text (no wrapped sentinel).
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Store{db: db, cfg: c, dir: dir, histN: map[protocol.ChannelID]int{}}
	s.dsync.wal.threshold = int(db.Opts().ValueThreshold)
	if err := s.openWAL(c.noSync); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		s.walClose()
		db.Close()
		return nil, err
	}
	if err := s.syncNow(); err != nil {
		s.walClose()
		db.Close()
		return nil, err
	}
	if err := s.dropOrphanHistory(); err != nil {
		s.walClose()
		db.Close()
		return nil, err
	}
	return s, nil
}

// MkdirDurable creates dir (mode 0700) and its missing parents, and syncs
// the parent of each directory it created: a new directory entry is on
// stable storage only once its parent directory is synced, and badger
// syncs only the inside of its directory. (The power-loss test found a
// store whose every acknowledged batch was lost because "db" itself was
// never synced.)
func MkdirDurable(dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory, making its entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// checkVersion checks the store's format version and writes the current
// one over an older one it reads (see formatVersion), unless keep
// (KeepFormat). Open syncs it before anything of the newer format is
// written.
func checkVersion(txn *badger.Txn, keep bool) error {
	v, err := getValue(txn, keyVersion)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("store: read version: %w", err)
	case len(v) != 1 || v[0] < formatVersionV1 || v[0] > formatVersion:
		return fmt.Errorf("%w: %x (this meshd reads versions %d to %d)", ErrVersion, v, formatVersionV1, formatVersion)
	case v[0] == formatVersion || keep:
		return nil
	}
	return txn.Set([]byte(keyVersion), []byte{formatVersion})
}

// load checks the format version and reads the inbox counter and size.
func (s *Store) load() error {
	return s.db.Update(func(txn *badger.Txn) error {
		if err := checkVersion(txn, s.cfg.keepFormat); err != nil {
			return err
		}
		v, err := getValue(txn, keyInboxSeq)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			s.nextSeq = 1
		case err != nil:
			return fmt.Errorf("store: read inbox counter: %w", err)
		case len(v) != 8 || binary.BigEndian.Uint64(v) == 0:
			return fmt.Errorf("%w: inbox counter %x", ErrCorrupt, v)
		default:
			s.nextSeq = binary.BigEndian.Uint64(v)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(inboxPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, err := parseInboxKey(it.Item().Key())
			if err != nil {
				return err
			}
			if seq >= s.nextSeq {
				return fmt.Errorf("%w: inbox entry %d at or beyond the counter %d", ErrCorrupt, seq, s.nextSeq)
			}
			s.inboxN++
		}
		return nil
	})
}

func getValue(txn *badger.Txn, key string) ([]byte, error) {
	item, err := txn.Get([]byte(key))
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.long.Lock()
	defer s.long.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// No batch can be logged now (ApplyAsync checks closed under mu);
	// let the logged ones be synced and applied, and checkpoint, before
	// closing badger under them.
	werr := s.walClose()
	s.dsync.mu.Lock()
	s.dsync.wal.closeLocked()
	s.dsync.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return werr
}

func checkEngineKey(k string) error {
	if k == "" || len(k) > MaxEngineKeyLen {
		return fmt.Errorf("%w: length %d", ErrBadKey, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return fmt.Errorf("%w: %q", ErrBadKey, k)
		}
	}
	return nil
}

// Apply durably carries out step 1 of a routing.Ready: it writes rd.Persist,
// removes rd.Deletes and appends rd.Deliveries to the inbox, synced before
// Apply returns. It returns the inbox sequence numbers given to the
// deliveries, in order.
//
// A key both in Persist and Deletes ends up deleted (deletes are applied
// last: a record taken and released within one step is gone).
//
// Atomicity. A batch that fits in one badger transaction (about 1.2 MB with
// the default memtable, see WithMemTableSize) is written in one: on error
// nothing of it is visible, after a crash all or nothing. A bigger batch is
// split into several synced transactions along the one line the Ready
// contract draws: each delivery lands in the same transaction as the
// engine's delivered record for it (routing.Delivery.Record) and the inbox
// counter, so a delivered message is never lost nor delivered twice. The
// other records may then land separately; this is safe because nothing of
// the Ready has been transmitted yet (the promise the records back is only
// made after Apply returns), and the engine restores from whatever subset
// it finds. A single record or delivery too big for a transaction fails
// with ErrBatchTooBig before anything is written.
func (s *Store) Apply(rd *routing.Ready) ([]uint64, error) {
	seqs, done, err := s.ApplyAsync(rd)
	if err != nil {
		return nil, err
	}
	if err := <-done; err != nil {
		return nil, err
	}
	return seqs, nil
}

// op is one write; a unit is a group of writes that must land together.
type op struct {
	key, value []byte
	del        bool
	nextSeq    uint64 // for an inbox entry: the counter value after it
	// mergedSet: a delete into which coalesce merged a set of the same
	// key; badger may not hold the key at all (wal.go).
	mergedSet bool
}

type unit []op

func (u unit) size() int64 {
	var n int64
	for _, o := range u {
		n += int64(len(o.key) + len(o.value) + 64)
	}
	return n
}

// deliveredRecord finds the engine's delivered record for d in rd.Persist
// (byKey: key to index): under d.Record, or, for an engine that did not
// name it, under the key the engine used before delivered records were
// keyed on their order, the envelope key in hex.
func deliveredRecord(byKey map[string]int, d *routing.Delivery) (int, bool) {
	if d.Record != "" {
		j, ok := byKey[d.Record]
		return j, ok
	}
	var dk [2 + 2*len(d.Key)]byte
	copy(dk[:], "d/")
	hex.Encode(dk[2:], d.Key[:])
	j, ok := byKey[string(dk[:])]
	return j, ok
}

// units turns a Ready into units: each delivery with its delivered record,
// then the other records, then the deletes. The units' ops and keys are
// cut from one array and one buffer, and the inbox entries from another
// (a batch used to cost several allocations per record,
// docs/performance.md). They are only encoded into the log's record
// (logUnits), so all of them are the store's scratch space (Store.mu
// held), reused by the next batch: release drops what they refer to.
func (s *Store) units(rd *routing.Ready) ([]unit, []uint64, error) {
	nd, np, nk := len(rd.Deliveries), len(rd.Persist), len(rd.Deletes)
	sc := &s.unitScratch
	units := slices.Grow(sc.units[:0], nd+np+nk)
	ops := slices.Grow(sc.ops[:0], 2*nd+np+nk)
	keys := keyBuf(slices.Grow(sc.keys[:0], keysLen(rd)))
	vals := slices.Grow(sc.vals[:0], valsLen(rd))
	defer func() { sc.units, sc.ops, sc.keys, sc.vals = units, ops, keys, vals }()
	// add appends a unit of the given ops, capped so that appending to it
	// cannot run into the next one.
	add := func(o ...op) {
		start := len(ops)
		ops = append(ops, o...)
		units = append(units, ops[start:len(ops):len(ops)])
	}
	var seqs []uint64
	var byKey map[string]int
	var used []bool
	if nd > 0 {
		if sc.byKey == nil {
			sc.byKey = map[string]int{}
		}
		byKey = sc.byKey
		for i, r := range rd.Persist {
			byKey[r.Key] = i
		}
		used = make([]bool, np)
		seqs = make([]uint64, nd)
		received := s.cfg.now()
		seq := s.nextSeq
		for i := range rd.Deliveries {
			e := InboxEntry{Seq: seq, Received: received, Delivery: rd.Deliveries[i]}
			start := len(vals)
			var err error
			if vals, err = appendInboxEntry(vals, &e); err != nil {
				return nil, nil, err
			}
			v := vals[start:len(vals):len(vals)]
			inbox := op{key: keys.inbox(seq), value: v, nextSeq: seq + 1}
			if j, ok := deliveredRecord(byKey, &e.Delivery); ok && !used[j] && e.Key != (protocol.EnvelopeKey{}) {
				used[j] = true
				add(inbox, op{key: keys.engine(rd.Persist[j].Key), value: rd.Persist[j].Value})
			} else {
				add(inbox)
			}
			seqs[i] = seq
			seq++
		}
	}
	for i, r := range rd.Persist {
		if used == nil || !used[i] {
			add(op{key: keys.engine(r.Key), value: r.Value})
		}
	}
	for _, k := range rd.Deletes {
		add(op{key: keys.engine(k), del: true})
	}
	return units, seqs, nil
}

// unitScratch is the space units builds a batch's ops in (Store.mu).
type unitScratch struct {
	units []unit
	ops   []op
	keys  keyBuf
	vals  []byte
	byKey map[string]int
}

// release drops the references of the batch built last: they point into
// the caller's Ready (Store.mu held). A batch writes only the elements
// up to its length, and each release zeroes those: beyond them the
// arrays are zero already, and clearing their whole capacity would cost
// every batch after a big one as much as the big one
// (BenchmarkUnitsAfterBigBatch).
func (sc *unitScratch) release() {
	clear(sc.units)
	clear(sc.ops)
	sc.byKey = dropOrClear(sc.byKey)
	sc.units, sc.ops = sc.units[:0], sc.ops[:0]
}

// scratchMapMax is the most keys a kept scratch map keeps room for:
// clearing a Go map costs what it once held, so a map that grew past this
// is dropped rather than cleared, and one big batch does not tax every
// later one.
const scratchMapMax = 4096

// dropOrClear empties a scratch map for reuse, or drops it (nil) if it
// grew past scratchMapMax.
func dropOrClear(m map[string]int) map[string]int {
	if len(m) > scratchMapMax {
		return nil
	}
	clear(m)
	return m
}

// valsLen is the room the inbox entries of rd's deliveries take.
func valsLen(rd *routing.Ready) int {
	n := 0
	for i := range rd.Deliveries {
		n += inboxHeaderSize + len(rd.Deliveries[i].Body)
	}
	return n
}

// keysLen is the room the keys of rd's ops take.
func keysLen(rd *routing.Ready) int {
	n := len(rd.Deliveries) * (len(inboxPrefix) + 8)
	for _, r := range rd.Persist {
		n += len(enginePrefix) + len(r.Key)
	}
	for _, k := range rd.Deletes {
		n += len(enginePrefix) + len(k)
	}
	return n
}

// keyBuf hands out keys cut from one buffer, each capped at its end.
type keyBuf []byte

func (b *keyBuf) engine(k string) []byte {
	start := len(*b)
	*b = append(append(*b, enginePrefix...), k...)
	return (*b)[start:len(*b):len(*b)]
}

func (b *keyBuf) inbox(seq uint64) []byte {
	start := len(*b)
	*b = binary.BigEndian.AppendUint64(append(*b, inboxPrefix...), seq)
	return (*b)[start:len(*b):len(*b)]
}

func wrapTxnErr(err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: %v", ErrBatchTooBig, err)
	}
	return fmt.Errorf("store: %w", err)
}

func engineKey(k string) []byte { return append([]byte(enginePrefix), k...) }

func inboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(inboxPrefix), seq)
}

// parseInboxKey decodes an inbox key strictly.
func parseInboxKey(k []byte) (uint64, error) {
	if len(k) != len(inboxPrefix)+8 || !bytes.HasPrefix(k, []byte(inboxPrefix)) {
		return 0, fmt.Errorf("%w: inbox key %x", ErrCorrupt, k)
	}
	seq := binary.BigEndian.Uint64(k[len(inboxPrefix):])
	if seq == 0 {
		return 0, fmt.Errorf("%w: inbox key %x: sequence number 0", ErrCorrupt, k)
	}
	return seq, nil
}

// EngineRecords returns every engine record in key order, for routing.New
// at start-up. Records with a malformed key are skipped and reported in an
// error wrapping ErrCorrupt; like routing.New's error it is informational
// when the records are not nil (the engine also skips corrupt values).
func (s *Store) EngineRecords() ([]routing.Record, error) {
	var recs []routing.Record
	var errs []error
	if err := s.waitApplied(); err != nil {
		return nil, err
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(enginePrefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(item.Key()[len(enginePrefix):])
			if err := checkEngineKey(k); err != nil {
				errs = append(errs, fmt.Errorf("%w: engine record %q: %v", ErrCorrupt, k, err))
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("store: read %q: %w", k, err)
			}
			recs = append(recs, routing.Record{Key: k, Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if recs == nil {
		recs = []routing.Record{}
	}
	return recs, errors.Join(errs...)
}

// CorruptEntryError reports an inbox entry that cannot be decoded. It wraps
// ErrCorrupt. Entries before it were read; the caller may continue after
// Seq, and Ack(Seq) removes the damaged entry.
type CorruptEntryError struct {
	Seq uint64
	Err error
}

func (e *CorruptEntryError) Error() string {
	return fmt.Sprintf("store: inbox entry %d: %v", e.Seq, e.Err)
}

func (e *CorruptEntryError) Unwrap() error { return e.Err }

// Inbox returns up to limit entries with sequence numbers greater than
// after, in order, and the cursor for the next page (the last sequence
// number returned, or after if there were none). limit <= 0 means 100.
//
// A corrupt entry stops the page: the entries before it are returned with
// a *CorruptEntryError (wrapping ErrCorrupt) that names its sequence
// number (next is the one before it); Ack removes it.
func (s *Store) Inbox(after uint64, limit int) (entries []InboxEntry, next uint64, err error) {
	if limit <= 0 {
		limit = 100
	}
	next = after
	start := after + 1
	if after == ^uint64(0) {
		return nil, after, nil
	}
	if err = s.waitApplied(); err != nil {
		return nil, after, err
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(inboxPrefix), PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(inboxKey(start)); it.Valid() && len(entries) < limit; it.Next() {
			item := it.Item()
			seq, err := parseInboxKey(item.Key())
			if err != nil {
				return err
			}
			var e InboxEntry
			err = item.Value(func(v []byte) error {
				var err error
				e, err = DecodeInboxEntry(v)
				return err
			})
			if err == nil && e.Seq != seq {
				err = fmt.Errorf("%w: inbox entry: sequence number %d under key %d", ErrCorrupt, e.Seq, seq)
			}
			if err != nil {
				return &CorruptEntryError{Seq: seq, Err: err}
			}
			entries = append(entries, e)
			next = seq
		}
		return nil
	})
	return entries, next, err
}

// Ack deletes acknowledged inbox entries. Unknown or already acknowledged
// sequence numbers are ignored.
func (s *Store) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	ops, err := s.inboxDeletes(seqs)
	if err != nil || len(ops) == 0 {
		s.mu.Unlock()
		return err
	}
	s.inboxN -= len(ops)
	return s.logAndWait(ops) // unlocks s.mu
}

// inboxDeletes returns the deletes of the inbox entries among seqs that
// exist, once badger holds every logged record (Store.mu held).
func (s *Store) inboxDeletes(seqs []uint64) ([]op, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	if err := s.waitApplied(); err != nil {
		return nil, err
	}
	var ops []op
	seen := make(map[uint64]bool, len(seqs))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, seq := range seqs {
			if seq == 0 || seen[seq] {
				continue
			}
			seen[seq] = true
			k := inboxKey(seq)
			if _, err := txn.Get(k); errors.Is(err, badger.ErrKeyNotFound) {
				continue
			} else if err != nil {
				return fmt.Errorf("store: ack %d: %w", seq, err)
			}
			ops = append(ops, op{key: k, del: true})
		}
		return nil
	})
	return ops, err
}

// InboxLen returns the number of unacknowledged inbox entries.
func (s *Store) InboxLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inboxN
}

// StoreStats describes the store for store.stats and metrics.
type StoreStats struct {
	// Inbox is the number of unacknowledged inbox entries; NextInboxSeq the
	// sequence number the next delivery gets.
	Inbox        int
	NextInboxSeq uint64
	// Engine counts engine records by key prefix: the key up to and
	// including its first '/' ("c/", "d/"), or the whole key ("seq").
	Engine map[string]int
	// LSMBytes and VLogBytes are badger's on-disk sizes (badger updates
	// them about once a minute).
	LSMBytes, VLogBytes int64
}

// Stats returns the store's statistics.
func (s *Store) Stats() (StoreStats, error) {
	s.mu.Lock()
	st := StoreStats{Inbox: s.inboxN, NextInboxSeq: s.nextSeq, Engine: map[string]int{}}
	s.mu.Unlock()
	if err := s.waitApplied(); err != nil {
		return st, err
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(enginePrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(enginePrefix):]
			if i := bytes.IndexByte(k, '/'); i >= 0 {
				k = k[:i+1]
			}
			st.Engine[string(k)]++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	st.LSMBytes, st.VLogBytes = s.db.Size()
	return st, nil
}

// slogLogger adapts slog to badger.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) log(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
}

func (s slogLogger) Errorf(f string, a ...any)   { s.log(slog.LevelError, f, a...) }
func (s slogLogger) Warningf(f string, a ...any) { s.log(slog.LevelWarn, f, a...) }
func (s slogLogger) Infof(f string, a ...any)    { s.log(slog.LevelDebug, f, a...) }
func (s slogLogger) Debugf(f string, a ...any)   { s.log(slog.LevelDebug-4, f, a...) }
