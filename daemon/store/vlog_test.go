package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// Values of ValueThreshold bytes or more live in badger's value log
// (badgerOptions). These tests cover what that changes for the store's
// files (durable.go, memempty.go) and readers.

// withValueThreshold sets badger's ValueThreshold (tests that need the
// values in the LSM tree).
func withValueThreshold(n int64) Option {
	return func(c *config) {
		c.badgerTweak = func(o badger.Options) badger.Options { return o.WithValueThreshold(n) }
	}
}

// TestValueThresholdPlacement: inbox entries, custody records and channel
// history go to the value log; delivered records, counters, channel and
// contact records stay in the LSM tree (below the threshold).
func TestValueThresholdPlacement(t *testing.T) {
	s := openT(t, t.TempDir())
	th := int(s.db.Opts().ValueThreshold)
	custody := crashValue(0)[:400]
	d := delivery(1)
	d.Body = make([]byte, 1)
	entry, err := EncodeInboxEntry(&InboxEntry{Seq: 1, Received: time.UnixMilli(1), Delivery: d})
	if err != nil {
		t.Fatal(err)
	}
	chanRec, err := encodeChannel(&Channel{Name: strings.Repeat("n", maxChannelName)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		n    int
		vlog bool
	}{
		{"custody record", len(custody), true},
		{"inbox entry with a 1-byte body", len(entry), true},
		{"history entry with a 25-byte body", historyHdrSize + 25, true},
		{"delivered record (routing: 8-byte order, envelope key)", 54, false},
		{"channel record", len(chanRec), false},
		{"contact", MaxContactName, false},
		{"counter", 8, false},
	} {
		if got := c.n >= th; got != c.vlog {
			t.Errorf("%s of %d bytes in the value log: %v, want %v (threshold %d)", c.what, c.n, got, c.vlog, th)
		}
	}
}

// TestSyncNowSyncsNewValueLogFiles: an acknowledged write outside the
// write-ahead log (channel history) can go into a value log file badger
// started a moment before, which it does not sync into the directory:
// after every synced write each value log file on disk must have been
// seen by a directory sync (durable.go).
func TestSyncNowSyncsNewValueLogFiles(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, func(c *config) {
		c.badgerTweak = func(o badger.Options) badger.Options { return o.WithValueLogFileSize(1 << 20) }
	})
	if err := s.PutChannel(histChannel); err != nil {
		t.Fatal(err)
	}
	files := 0
	for n := 0; n < 3000; n++ {
		if _, err := s.AppendHistory([]HistoryEntry{{Channel: histChannel.ID(), Received: time.UnixMilli(1), Body: histBody(n)}}, 1<<30); err != nil {
			t.Fatal(err)
		}
		names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
		files = len(names)
		s.dsync.mu.Lock()
		seen := s.dsync.names
		s.dsync.mu.Unlock()
		for _, name := range names {
			if !slices.Contains(seen, filepath.Base(name)) {
				t.Fatalf("after append %d: %s is on disk but no directory sync saw it", n, filepath.Base(name))
			}
		}
	}
	if files < 3 {
		t.Fatalf("%d value log files: badger started no new file while the store ran", files)
	}
}

// TestOpenEmptyValueLogFile: a power cut can leave a value log file whose
// directory entry is on disk but not its size: 0 bytes, which badger
// refuses to open ("Open existing file: ... Create a new file"). The
// store gives it the header badger writes into a new file (no data in
// it: a value is durable only with the file's size) and opens with
// everything it had. It does not remove it: badger would number its
// next file the same, and a value pointer into the lost file (from a
// write after the last checkpoint, which the log replays) would read
// the new file's bytes.
func TestOpenEmptyValueLogFile(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if _, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "c/1", Value: crashValue(1)}}, Deliveries: []routing.Delivery{delivery(1)}}); err != nil {
		t.Fatal(err)
	}
	recs1, inbox1 := state(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	top := 0
	for _, n := range names {
		fid, _ := vlogNumber(filepath.Base(n))
		top = max(top, fid)
	}
	empty := filepath.Join(dir, fmt.Sprintf("%06d.vlog", top+1))
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	recs2, inbox2 := state(t, s)
	if !slices.EqualFunc(recs1, recs2, func(a, b routing.Record) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) ||
		len(inbox1) != len(inbox2) || string(inbox1[0].Body) != string(inbox2[0].Body) {
		t.Fatal("state changed across the reopen")
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%06d.vlog", top+2))); err != nil {
		t.Errorf("badger did not start its new file past the empty one: %v", err)
	}
}

// TestUnreadableValuesSkipped: a power cut can keep a record's value
// pointer (in a memtable log or table) and lose the value log bytes it
// points to, for a write the store had not acknowledged; for the keys
// the write-ahead log owns, replay writes them again, but a write
// outside the log is not replayed. Its readers skip such a record as
// damaged instead of failing: here every value log byte is lost.
func TestUnreadableValuesSkipped(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.PutChannel(histChannel); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendHistory([]HistoryEntry{{Channel: histChannel.ID(), Received: time.UnixMilli(1), Body: histBody(0)}}, 10); err != nil {
		t.Fatal(err)
	}
	addr := "/ip4/127.0.0.1/tcp/4001/" + strings.Repeat("x", 120)
	if err := s.PutKnownPeers([]KnownPeer{{ID: "12D3KooWpeer", Addrs: []string{addr}, Seen: time.Unix(100, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutContact(delivery(1).From, "alice"); err != nil {
		t.Fatal(err)
	}
	peers, err := s.KnownPeers()
	if err != nil || len(peers) != 1 {
		t.Fatalf("known peers %v, %v", peers, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, n := range names {
		if err := os.Truncate(n, 20); err != nil { // the header only
			t.Fatal(err)
		}
	}
	s = openT(t, dir)
	if peers, err := s.KnownPeers(); err != nil || len(peers) != 0 {
		t.Errorf("known peers %v, %v: want none, no error", peers, err)
	}
	if es, _, _, err := s.History(histChannel.ID(), 0, 10); err != nil || len(es) != 0 {
		t.Errorf("history %d entries, %v: want none, no error", len(es), err)
	}
	if cs, err := s.Channels(); err != nil || len(cs) != 1 {
		t.Errorf("channels %v, %v: the channel record lives in the LSM tree", cs, err)
	}
	if cs, err := s.Contacts(); err != nil || len(cs) != 1 {
		t.Errorf("contacts %v, %v: the contact lives in the LSM tree", cs, err)
	}
}
