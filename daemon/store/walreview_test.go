package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"meshd.dev/meshd/routing"
)

// TestWALForgedRecordInPayload: a message's bytes are written into the
// log verbatim (a custody record's value), and a sender chooses them. A
// forged record inside them (valid CRC, a seq ahead of the log, a synced
// field claiming it) must not be taken for a record of the log when the
// segment is reused and those bytes lie behind the records: otherwise the
// store refuses to open ("record N is missing or damaged, but record M
// says it was synced") after every restart, clean or not, and the node
// stays down until an operator moves the log aside.
func TestWALForgedRecordInPayload(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var forged []byte
	for i := range 8 { // seqs a remote sender can only guess at: any ahead of the log will do
		seq := uint64(100 + 1000*i)
		forged = append(forged, forgeWALRecord(seq, seq-1)...)
	}
	apply(t, s, rec("c/evil", string(forged)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The next run reuses segment 0 from its start: a smaller record
	// covers the beginning of the old one, the forged bytes lie behind it.
	s = openT(t, dir)
	apply(t, s, rec("c/x", "y"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("a forged record in a message stops the store from opening: %v", err)
	}
	defer c.Close()
	if got := records(t, c); got["c/x"] != "y" || got["c/evil"] != string(forged) {
		t.Fatalf("after reopening: %d records", len(got))
	}
}

// forgeWALRecord is what a sender who knows the record format (it is
// documented) but not the store's files can build: it has to guess the
// log's id.
func forgeWALRecord(seq, synced uint64) []byte {
	return appendWALRecord(nil, 0x5eed, seq, synced, []op{{key: []byte("e/forged"), value: []byte(fmt.Sprint(seq))}})
}

// walIDOf reads the log's id in the store directory dir.
func walIDOf(t *testing.T, dir string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, walDirName, walIDName))
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

// TestWALIDFile: a log whose id file is lost or damaged cannot tell its
// records from a message's bytes: opening fails with ErrWALCorrupt
// instead of dropping the records it can no longer recognise.
func TestWALIDFile(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	blockApplier(t, s)
	apply(t, s, rec("c/1", "one"))
	crashed := crashCopy(t, s)
	damaged := crashCopyDir(t, crashed)
	if err := os.Remove(filepath.Join(crashed, walDirName, walIDName)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(damaged, walDirName, walIDName), []byte("12345678abcd"), 0o600)
	for name, d := range map[string]string{"lost": crashed, "damaged": damaged} {
		if c, err := Open(d, quiet); !errors.Is(err, ErrWALCorrupt) {
			if err == nil {
				c.Close()
			}
			t.Errorf("id file %s: %v, want ErrWALCorrupt", name, err)
		}
	}
}

// TestWALSegmentLost: a segment file that is gone (a damaged file
// system, fsck) while the log holds records is damage, not a new log:
// recreating it empty silently dropped the acknowledged batches it held.
func TestWALSegmentLost(t *testing.T) {
	s := openT(t, t.TempDir())
	blockApplier(t, s) // no checkpoint: the records of both segments are needed
	val := string(make([]byte, 20_000))
	for i := 0; s.wal.cur == 0; i++ {
		apply(t, s, rec(fmt.Sprintf("c/%d", i), val))
	}
	apply(t, s, rec("c/last", "acknowledged"))
	dir := crashCopy(t, s)
	if err := os.Remove(filepath.Join(dir, walDirName, "seg-1")); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, quiet)
	if err == nil {
		got := records(t, c)
		c.Close()
		t.Fatalf("opened without the segment that held the last acknowledged batches (c/last %q)", got["c/last"])
	}
	if !errors.Is(err, ErrWALCorrupt) {
		t.Fatalf("a lost segment: %v, want ErrWALCorrupt", err)
	}
}

// TestWALBackupMidRecord: the applier commits a record too big for one
// badger transaction over several. A backup whose snapshot fell between
// two of them (a record logged after the backup began) held half a
// batch: inbox entries without the inbox counter that covers them (the
// restored store does not open), or, as the split falls, part of a
// batch's deliveries and delivered records. Backup waits for the applier to finish the
// record it is in.
func TestWALBackupMidRecord(t *testing.T) {
	old := walSegSize
	walSegSize = 8 << 20 // records of up to 4 MiB: more than one transaction (1.2 MB)
	t.Cleanup(func() { walSegSize = old })
	// Values in the LSM tree, where they count in full towards badger's
	// transaction limit (in the value log the record fits in one).
	s := openT(t, t.TempDir(), withValueThreshold(1<<20))
	gate, mid := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	rd := &routing.Ready{}
	for i := range 40 {
		d := delivery(i)
		d.Body = bytes.Repeat([]byte{byte(i)}, 40_000)
		rd.Deliveries = append(rd.Deliveries, d)
	}
	var seqs []uint64
	first := true
	setHook(s, func() {
		s.wal.commitHook = func() {
			if first {
				first = false
				close(mid)
				<-gate
			}
		}
		// Between the backup's wait for what was logged before it and
		// its snapshot, a batch is logged and the applier is in it.
		s.wal.backupHook = func() {
			var done <-chan error
			var err error
			if seqs, done, err = s.ApplyAsync(rd); err != nil {
				t.Error(err)
			} else if err := <-done; err != nil {
				t.Error(err)
			}
			<-mid
		}
		s.wal.backupWaits = release // the backup waits for the applier
	})
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	release()
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Load(dir, &buf, quiet); err != nil {
		t.Fatalf("a backup taken while the applier was in a record: %v", err)
	}
	r := openT(t, dir)
	entries, _, err := r.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(entries); n != 0 && n != len(seqs) {
		t.Fatalf("restored %d inbox entries of a batch of %d", n, len(seqs))
	}
}

// TestWALSegmentTruncated: both segments are created at one size and
// never change it; a segment cut short (a damaged file system) lost the
// records past the cut, acknowledged ones among them, without a trace.
func TestWALSegmentTruncated(t *testing.T) {
	s := openT(t, t.TempDir())
	blockApplier(t, s)
	val := string(make([]byte, 20_000))
	for i := range 10 {
		apply(t, s, rec(fmt.Sprintf("c/%d", i), val))
	}
	dir := crashCopy(t, s)
	rs := walRecords(t, dir)
	if err := os.Truncate(filepath.Join(dir, walDirName, "seg-0"), int64(rs[6].off)); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, quiet)
	if err == nil {
		n := len(records(t, c))
		c.Close()
		t.Fatalf("opened a log whose segment lost its last 4 acknowledged records: %d of 10 records", n)
	}
	if !errors.Is(err, ErrWALCorrupt) {
		t.Fatalf("a truncated segment: %v, want ErrWALCorrupt", err)
	}
}

// TestWALCleanReopenQuiet: a cleanly closed store has nothing to drop; the
// stale records behind the newest in a reused segment are not a torn
// tail, and opening must not warn that it dropped one (the warning tells
// the operator that batches were lost at a crash).
func TestWALCleanReopenQuiet(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for run := range 3 {
		s, err := Open(dir, WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		apply(t, s, rec(fmt.Sprintf("c/%d", run), strings.Repeat("v", 1000-300*run)))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if logs.Len() > 0 {
		t.Fatalf("opening cleanly closed stores warned:\n%s", logs.String())
	}
}
