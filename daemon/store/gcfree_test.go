package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// TestGCFreesEachFileBeforeTheNext: a GC run that finds several value log
// files worth rewriting must delete each one once its live values are
// moved (and durable), before it copies the next: holding every deletion
// until the run ends needs the moved copies of all the files on disk
// beside their originals, which on a disk near its reserve (a node that
// delivered a backlog while the disk was filling) can run it out of
// space in the middle of the GC that was to free it.
func TestGCFreesEachFileBeforeTheNext(t *testing.T) {
	dir := t.TempDir()
	tweak := func(c *config) {
		c.badgerTweak = func(o badger.Options) badger.Options { return o.WithValueLogFileSize(1 << 20) }
	}
	s := openT(t, dir, tweak)
	const n, per = 4000, 100
	key := func(i int) string { return fmt.Sprintf("g/%08d", i) }
	for b := 0; b < n/per; b++ {
		var rd routing.Ready
		for i := b * per; i < (b+1)*per; i++ {
			rd.Persist = append(rd.Persist, routing.Record{Key: key(i), Value: crashValue(i)})
		}
		apply(t, s, &rd)
	}
	// The sets and the deletes go to two tables (a close flushes the
	// memtable), which the Flatten below compacts into one: the
	// compaction counts the deleted values as garbage.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, tweak)
	for b := 0; b < n/per; b++ {
		var rd routing.Ready
		for i := b * per; i < (b+1)*per; i++ {
			if i%10 != 0 {
				rd.Deletes = append(rd.Deletes, key(i))
			}
		}
		apply(t, s, &rd)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var before []string
	rewrites := 0
	s = openT(t, dir, tweak, func(c *config) {
		c.gcRewrote = func() {
			rewrites++
			now, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
			gone := 0
			for _, f := range before {
				if !slices.Contains(now, f) {
					gone++
				}
			}
			if gone < rewrites {
				t.Errorf("after %d rewrites %d of the %d value log files are gone: the GC keeps the rewritten files until it ends", rewrites, gone, len(before))
			}
		}
	})
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	before, _ = filepath.Glob(filepath.Join(dir, "*.vlog"))
	res, err := s.GC()
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrites < 2 {
		t.Fatalf("the GC rewrote %d files of %d: the test needs two or more", res.Rewrites, len(before))
	}
	recs, err := s.EngineRecords()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(r.Key, "g/%d", &i); err != nil || string(r.Value) != string(crashValue(i)) {
			t.Fatalf("record %q damaged by the GC", r.Key)
		}
	}
	if len(recs) != n/10 {
		t.Fatalf("%d records after the GC, want %d", len(recs), n/10)
	}
}
