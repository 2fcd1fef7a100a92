package store

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The apply-history child appends channel history entries of about 1 KB
// one by one (a writer outside the write-ahead log: each append is synced
// through badger, syncNow) and prints "ack <n> <seq>" after each. Its
// badger starts a new value log file every MiB (badgerTweak; the store's
// is 64 MiB), so that the entries go into value log files created while
// the store runs, whose directory entries badger does not sync. The
// report-history child prints the sequence numbers of the entries that
// survived, which must include every acknowledged one.
var histChannel = Channel{Name: "power", Joined: time.UnixMilli(1)}

func openHistory(dir string) (*Store, error) {
	return Open(dir, quiet, func(c *config) {
		c.badgerTweak = func(o badger.Options) badger.Options { return o.WithValueLogFileSize(1 << 20) }
	})
}

func histBody(n int) []byte {
	return []byte(fmt.Sprintf("entry %d %s", n, strings.Repeat("x", 900)))
}

// histSeqs returns the sequence number of each entry on disk, checking
// that the entries are 0, 1, 2, ... in order.
func histSeqs(s *Store) ([]uint64, error) {
	es, _, _, err := s.History(histChannel.ID(), 0, 1<<20)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(es))
	for i, e := range es {
		if string(e.Body) != string(histBody(i)) {
			return nil, fmt.Errorf("history entry %d: %.20q", i, e.Body)
		}
		seqs[i] = e.Seq
	}
	return seqs, nil
}

func runApplyHistory(dir string) int {
	s, err := openHistory(dir)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	if err := s.PutChannel(histChannel); err != nil {
		fmt.Println("channel:", err)
		return 1
	}
	seqs, err := histSeqs(s)
	if err != nil {
		fmt.Println("history:", err)
		return 1
	}
	fmt.Println("ready")
	vlogs, rotated := vlogFiles(dir), false
	for n := len(seqs); ; n++ {
		got, err := s.AppendHistory([]HistoryEntry{{Channel: histChannel.ID(), Received: time.UnixMilli(int64(n)), Body: histBody(n)}}, 1<<30)
		if err != nil {
			fmt.Println("append:", err)
			return 1
		}
		fmt.Printf("ack %d %d\n", n, got[0])
		if rotated {
			// This entry is the first in the new file: the cut now.
			fmt.Println("cut")
			select {}
		}
		// Badger starts the next file right after the write that
		// filled the current one.
		rotated = vlogFiles(dir) > vlogs
	}
}

// vlogFiles counts the value log files in dir.
func vlogFiles(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	return len(names)
}

func runReportHistory(dir string) int {
	s, err := openHistory(dir)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer s.Close()
	return printBatches(histSeqs(s))
}

// TestPowerLossHistoryValueLog: power cuts while channel history entries
// go into value log files badger created while the store ran: every
// acknowledged entry survives.
func TestPowerLossHistoryValueLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	cuts := make([]int, 4)
	for i := range cuts {
		cuts[i] = 1200 + rng.IntN(1200)
	}
	total := powerRounds(t, "apply-history", cuts)
	t.Logf("%d acknowledged history entries checked", total)
}
