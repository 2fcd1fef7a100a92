package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Opening the write-ahead log: create or open the segments, scan them,
// replay what badger may lack, checkpoint. See wal.go.

// openWAL opens the log in s.dir/wal (creating it for a new store or one
// written before the log existed), replays the records after the
// checkpoint into badger and starts the log's goroutines.
func (s *Store) openWAL(noSync bool) error {
	w := &wlog{dir: filepath.Join(s.dir, walDirName), segSize: walSegSize, noSync: noSync, lag: walApplyLag}
	w.cond = sync.NewCond(&w.mu)
	w.syncCond = sync.NewCond(&w.mu)
	w.applyCond = sync.NewCond(&w.mu)
	w.ckptCond = sync.NewCond(&w.mu)
	s.wal = w
	if err := MkdirDurable(w.dir); err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	ckpt, err := readCheckpoint(w.dir)
	if err != nil {
		return err
	}
	if w.id, err = openWALID(w.dir, noSync); err != nil {
		return err
	}
	lost, err := walLostSegment(w.dir)
	if err != nil {
		return err
	}
	if lost >= 0 { // recreated at the size of the other one
		if fi, err := os.Stat(filepath.Join(w.dir, fmt.Sprintf("seg-%d", 1-lost))); err == nil {
			w.segSize = fi.Size()
		}
	}
	var data [2][]byte
	for i := range w.segs {
		if w.segs[i], data[i], err = openSegment(w.dir, i, w.segSize, noSync); err != nil {
			s.closeSegs()
			return err
		}
	}
	if lost >= 0 && (hasCheckpoint(w.dir) || slices.ContainsFunc(data[1-lost], func(b byte) bool { return b != 0 })) {
		s.closeSegs()
		return fmt.Errorf("%w: segment %d is missing while the log holds records (see docs/operations.md)", ErrWALCorrupt, lost)
	}
	// The writer wraps at the size the segments have (a build with
	// another size may have created them). Both are created at one size
	// and never change it: a segment of another size was cut short, and
	// the records past the cut are lost (TestWALSegmentTruncated).
	w.segSize = int64(min(len(data[0]), len(data[1])))
	if len(data[0]) != len(data[1]) {
		s.closeSegs()
		return fmt.Errorf("%w: segments of %d and %d bytes (see docs/operations.md)", ErrWALCorrupt, len(data[0]), len(data[1]))
	}
	if w.segSize < walMinSeg {
		s.closeSegs()
		return fmt.Errorf("%w: a segment of %d bytes", ErrWALCorrupt, w.segSize)
	}
	scan, err := walScan(data, ckpt, w.id)
	if err != nil {
		s.closeSegs()
		return err
	}
	if scan.droppedRecords > 0 || scan.torn {
		s.cfg.logger.Warn("write-ahead log: dropped a torn or unsynced tail (never reported durable)",
			"after_record", scan.last, "intact_records", scan.droppedRecords, "intact_bytes", scan.droppedBytes, "torn_record", scan.torn)
	}
	for _, r := range scan.recs {
		if _, err := s.applyOps(r.ops); err != nil {
			s.closeSegs()
			return fmt.Errorf("store: replaying record %d of the write-ahead log: %w", r.seq, err)
		}
	}
	// Every record on disk, replayed or dropped, is now at or below the
	// checkpoint: the segments can be overwritten from their start, and a
	// new record's seq is above every one a segment still holds.
	top := max(ckpt, scan.last, scan.maxSeen)
	if top > ckpt {
		if err := s.walCheckpoint(top); err != nil {
			s.closeSegs()
			return err
		}
	}
	if len(scan.recs) > 0 {
		s.cfg.logger.Info("write-ahead log replayed", "records", len(scan.recs), "from", scan.recs[0].seq, "to", scan.last)
	}
	w.next = top + 1
	w.logged, w.applied, w.checkpointed = top, top, top
	w.durable.Store(top)
	// Badger holds everything replayed; from here on only the applier
	// writes the log's keys.
	if w.held, err = s.buildHeld(); err != nil {
		s.closeSegs()
		return fmt.Errorf("store: reading the custody keys: %w", err)
	}
	w.wg.Add(3)
	go s.walSyncer()
	go s.walApplier()
	go s.walCheckpointer()
	return nil
}

func (s *Store) closeSegs() {
	for _, f := range s.wal.segs {
		if f != nil {
			f.Close()
		}
	}
}

// openWALID reads the log's id (wal/id: the id u64 LE, CRC-32C of it u32
// LE), or draws and writes one, synced, before the segments exist: a
// segment without an id means the id file was lost, and with it the
// means to tell the log's records from a message's bytes.
func openWALID(dir string, noSync bool) (uint64, error) {
	name := filepath.Join(dir, walIDName)
	b, err := os.ReadFile(name)
	if err == nil {
		if len(b) != walCkptFileSize || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
			return 0, fmt.Errorf("%w: id file %x", ErrWALCorrupt, b)
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("store: write-ahead log: %w", err)
	}
	for i := range 2 {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("seg-%d", i))); !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("%w: segment %d without an id file (%v)", ErrWALCorrupt, i, err)
		}
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return 0, fmt.Errorf("store: write-ahead log id: %w", err)
	}
	b = binary.LittleEndian.AppendUint32(r[:], crc32.Checksum(r[:], castagnoli))
	if err := writeFileSynced(name+".tmp", b, noSync); err != nil {
		return 0, fmt.Errorf("store: write-ahead log id: %w", err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		return 0, fmt.Errorf("store: write-ahead log id: %w", err)
	}
	if !noSync {
		if err := syncDir(dir); err != nil {
			return 0, fmt.Errorf("store: write-ahead log id: %w", err)
		}
	}
	return binary.LittleEndian.Uint64(r[:]), nil
}

// walNextHeader reports whether b starts with the header of the record
// after prev (any seq at a segment's start) of the log id.
func walNextHeader(b []byte, id uint64, first bool, prev uint64) bool {
	if len(b) < walHeader || binary.LittleEndian.Uint64(b[8:]) != id {
		return false
	}
	seq, _ := walSeq(b)
	return first || seq == prev+1
}

// walLostSegment returns the segment missing from dir while the other
// exists (-1 if none). The segments are created one after the other
// before any record is written, so a missing one is legitimate only
// while the log is still empty: a crash between the two creations.
// Otherwise it is damage (a file system check removed it), and
// recreating it empty would drop the acknowledged batches it held.
func walLostSegment(dir string) (int, error) {
	var exists [2]bool
	for i := range exists {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("seg-%d", i)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("store: write-ahead log: %w", err)
		}
		exists[i] = err == nil
	}
	switch {
	case exists[0] && !exists[1]:
		return 1, nil
	case exists[1] && !exists[0]:
		return 0, nil
	case !exists[0] && hasCheckpoint(dir):
		return 0, fmt.Errorf("%w: both segments are missing but a checkpoint exists (see docs/operations.md)", ErrWALCorrupt)
	}
	return -1, nil
}

func hasCheckpoint(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, walCkptName))
	return err == nil
}

// openSegment opens segment i, creating it full of zeros (written and
// synced, then renamed into place) if it does not exist, and returns its
// contents.
func openSegment(dir string, i int, size int64, noSync bool) (*os.File, []byte, error) {
	name := filepath.Join(dir, fmt.Sprintf("seg-%d", i))
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		tmp := name + ".tmp"
		// The zeros written are also the new segment's contents: one
		// buffer of size bytes, not two (16 MiB each by default).
		zeros := make([]byte, size)
		if err := writeFileSynced(tmp, zeros, noSync); err != nil {
			return nil, nil, fmt.Errorf("store: creating a write-ahead log segment: %w", err)
		}
		if err := os.Rename(tmp, name); err != nil {
			return nil, nil, fmt.Errorf("store: creating a write-ahead log segment: %w", err)
		}
		if !noSync {
			if err := syncDir(dir); err != nil {
				return nil, nil, fmt.Errorf("store: %w", err)
			}
		}
		data, err = zeros, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	return f, data, nil
}

// walMinSeg is the smallest segment the store accepts.
const walMinSeg = 64 << 10

// walScanResult is what walScan found.
type walScanResult struct {
	recs []walRecord // to replay: checkpoint+1 .. last, contiguous
	last uint64      // last seq of recs (or the checkpoint)
	// maxSeen is the highest seq of any intact record anywhere.
	maxSeen uint64
	// droppedRecords, droppedBytes: the intact records after the chain's
	// end (written, never reported durable); torn: a walk ended at a
	// record whose length or CRC is wrong.
	droppedRecords int
	droppedBytes   int64
	torn           bool
}

// walSeqWindow bounds how far past the chain's end an intact record's
// seq can be (two segments of records of at least walHeader bytes): the
// scan of every offset checks it before it computes a CRC.
const walSeqWindow = 1 << 24

// walScan finds the records to replay: from each segment's start, the
// intact records with contiguous seqs (a reused segment holds older
// records behind the newest; a torn or damaged record ends the walk),
// then from ckpt+1 on, the contiguous chain across both segments. A
// break in the chain is a torn tail unless an intact record written
// later says (its synced field) that the missing record had been synced:
// then acknowledged data is damaged, and the error wraps ErrWALCorrupt.
func walScan(data [2][]byte, ckpt, id uint64) (walScanResult, error) {
	res := walScanResult{last: ckpt, maxSeen: ckpt}
	bySeq := map[uint64][]byte{}
	var ends [2]int
	for i, d := range data {
		var torn bool
		ends[i], torn = walWalk(d, id, bySeq)
		res.torn = res.torn || torn
	}
	for seq := ckpt + 1; ; seq++ {
		b, ok := bySeq[seq]
		if !ok {
			break
		}
		r, err := decodeWALRecord(b, id)
		if err != nil {
			return res, fmt.Errorf("record %d: %w", seq, err)
		}
		res.recs = append(res.recs, r)
		res.last = seq
	}
	// Every intact record the chain did not take: those the walks found,
	// and those at any offset after a walk's end.
	later := func(b []byte) error {
		seq, synced := walSeq(b)
		if seq <= res.last {
			return nil
		}
		if synced > res.last {
			return fmt.Errorf("%w: record %d is missing or damaged, but record %d says it was synced (acknowledged); see docs/operations.md", ErrWALCorrupt, res.last+1, seq)
		}
		res.maxSeen = max(res.maxSeen, seq)
		res.droppedRecords++
		res.droppedBytes += int64(len(b))
		return nil
	}
	for _, b := range bySeq {
		if err := later(b); err != nil {
			return res, err
		}
	}
	var idb [8]byte
	binary.LittleEndian.PutUint64(idb[:], id)
	for i, d := range data {
		// Only offsets whose bytes 8-15 are the log's id can start a
		// record: find them with bytes.Index (a 16 MiB segment is scanned
		// at memory speed, not byte by byte).
		for off := ends[i]; off+walHeader <= len(d); off++ {
			j := bytes.Index(d[off+8:], idb[:])
			if j < 0 {
				break
			}
			if off += j; off+walHeader > len(d) {
				break
			}
			if d[off]|d[off+1]|d[off+2]|d[off+3] == 0 {
				continue
			}
			seq, synced := walSeq(d[off:])
			if seq <= res.last || seq-res.last > walSeqWindow || synced >= seq {
				continue
			}
			if n, err := walFrame(d[off:], id); n > 0 && err == nil {
				if err := later(d[off : off+n]); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// walWalk collects the intact records with contiguous seqs from the start
// of segment d into bySeq and returns the offset where the walk stopped
// and whether a torn or damaged record stopped it.
func walWalk(d []byte, id uint64, bySeq map[uint64][]byte) (end int, torn bool) {
	off := 0
	var prev uint64
	for {
		n, err := walFrame(d[off:], id)
		if err != nil {
			// Torn only if it starts as the next record would; behind
			// the newest records of a reused segment lie older ones, cut
			// anywhere (TestWALCleanReopenQuiet).
			return off, walNextHeader(d[off:], id, off == 0, prev)
		}
		if n == 0 {
			return off, false
		}
		seq, _ := walSeq(d[off:])
		if off > 0 && seq != prev+1 {
			return off, false
		}
		if _, dup := bySeq[seq]; !dup {
			bySeq[seq] = d[off : off+n]
		}
		prev = seq
		off += n
	}
}
