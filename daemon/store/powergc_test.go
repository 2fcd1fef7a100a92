package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// The apply-gc child applies crashBatch with one more record per batch,
// g/<b>, of a custody record's size, deleted gcKeep batches later (past
// the applier's groups, so that badger gets the set and the delete): with
// values in the value log (ValueThreshold, badgerOptions) these are the
// garbage a node's delivered custody records leave there. After
// gcSetup batches it closes the store and opens it again (badger starts a
// new value log file at every open, and flushes its memtable to a table
// at every close), compacts the tables (DB.Flatten: badger picks the
// files to collect by the discard statistics compactions keep; level 0
// compacts at one table, badgerTweak) and runs the value log GC, which
// moves the live values of the earlier files (inbox entries, the last
// g/ records) into the current file and deletes the old ones. Then it
// applies batches until the power cut; their applies sync the directory
// (the applier's syncFiles). The report must read every acknowledged
// batch: the moved values must be durable before the file they left is
// gone.
const (
	gcPrefix = "g/"
	gcKeep   = 24
	gcSetup  = 60
)

func gcBatch(b int) *routing.Ready {
	rd := crashBatch(b)
	rd.Persist = append(rd.Persist, routing.Record{Key: fmt.Sprintf("%s%08d", gcPrefix, b), Value: crashValue(b)})
	if b >= gcKeep {
		rd.Deletes = append(rd.Deletes, fmt.Sprintf("%s%08d", gcPrefix, b-gcKeep))
	}
	return rd
}

// checkGC checks the g/ records of a store holding top whole batches of
// the apply-gc child: those of the last gcKeep batches, each whole.
func checkGC(recs []routing.Record, top int) error {
	n := 0
	for _, r := range recs {
		b, ok := 0, strings.HasPrefix(r.Key, gcPrefix)
		if !ok {
			continue
		}
		if _, err := fmt.Sscanf(r.Key[len(gcPrefix):], "%d", &b); err != nil || b < top-gcKeep || b >= top {
			return fmt.Errorf("g/ record %q in a store of %d batches", r.Key, top)
		}
		if string(r.Value) != string(crashValue(b)) {
			return fmt.Errorf("g/ record %q damaged", r.Key)
		}
		n++
	}
	if n > 0 && n != min(top, gcKeep) {
		return fmt.Errorf("%d g/ records in a store of %d batches", n, top)
	}
	return nil
}

func openGC(dir string) (*Store, error) {
	return Open(dir, quiet, func(c *config) {
		c.badgerTweak = func(o badger.Options) badger.Options {
			return o.WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(8)
		}
	})
}

func runApplyGC(dir string) int {
	s, err := openGC(dir)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	next, ok := childReady(s)
	if !ok {
		return 1
	}
	apply := func(b int) bool {
		seqs, err := s.Apply(gcBatch(b))
		if err != nil {
			fmt.Println("apply:", err)
			return false
		}
		fmt.Printf("ack %d %d\n", b, seqs[0])
		return true
	}
	b := next
	for ; b < next+gcSetup; b++ {
		if !apply(b) {
			return 1
		}
	}
	if err := s.Close(); err != nil {
		fmt.Println("close:", err)
		return 1
	}
	if s, err = openGC(dir); err != nil {
		fmt.Println("open:", err)
		return 1
	}
	if err := s.db.Flatten(1); err != nil {
		fmt.Println("flatten:", err)
		return 1
	}
	res, err := s.GC()
	if err != nil {
		fmt.Println("gc:", err)
		return 1
	}
	fmt.Printf("gc %d\n", res.Rewrites)
	for ; ; b++ {
		if !apply(b) {
			return 1
		}
	}
}

// TestPowerLossValueLogGC: power cuts right after a value log GC moved
// values and deleted their old file (apply-gc): every acknowledged batch
// survives, whole, and the GC did rewrite files (else the test shows
// nothing).
func TestPowerLossValueLogGC(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cuts := make([]int, 5)
	for i := range cuts {
		cuts[i] = gcSetup + 1 + rng.IntN(20)
	}
	gcRewrites = 0
	total := powerRounds(t, "apply-gc", cuts)
	if gcRewrites == 0 {
		t.Fatalf("the value log GC rewrote no file in %d rounds: nothing was tested", len(cuts))
	}
	t.Logf("%d acknowledged batches checked, %d value log files rewritten", total, gcRewrites)
}
