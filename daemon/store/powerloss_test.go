package store

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hanwen/go-fuse/v2/fuse"

	"meshd.dev/meshd/internal/powerloss"
	"meshd.dev/meshd/protocol"
)

// The power-loss test runs the store on internal/powerloss, a FUSE
// filesystem that keeps only what was fsynced (file bytes, and directory
// entries once the directory was synced), and cuts the power at a random
// moment while a child process applies batches (the kill -9 child of
// crash_test.go). It then mounts what survived and checks, in another
// child, that every batch acknowledged before the cut is there, whole.
// kill -9 alone cannot show this: the page cache survives a killed
// process, so a store that never syncs passes the kill -9 test.
//
// The processes that touch the store are children because badger maps
// its files: a page fault on a FUSE mapping served by the faulting
// process itself can deadlock it (the fault holds the address space lock
// the server's memory allocation needs).

// openUnsynced opens the store as Open does but without SyncWrites: the
// negative control, a store that acknowledges before its data is on
// stable storage.
func openUnsynced(dir string, opts ...Option) (*Store, error) {
	c := config{memTableSize: 8 << 20, now: time.Now, noSync: true}
	for _, o := range opts {
		o(&c)
	}
	if err := MkdirDurable(dir); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(dir, &c).WithSyncWrites(false))
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, cfg: c, dir: dir, histN: map[protocol.ChannelID]int{}}
	if err := s.openWAL(true); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openForChild opens the store the way a child mode asks for.
func openForChild(kind, dir string) (*Store, error) {
	if kind == "apply-unsynced" {
		return openUnsynced(dir, quiet)
	}
	return Open(dir, quiet)
}

// runReport opens the store in dir, prints "batches <n> <seq of each>"
// for the prefix of whole batches it holds, and closes it.
func runReport(dir string) int {
	s, err := Open(dir, quiet)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer s.Close()
	seqs, err := diskBatches(s)
	if err == nil {
		err = checkReuse(s, len(seqs))
	}
	return printBatches(seqs, err)
}

// printBatches prints what a report child found: "batches <n> <seq of
// each>", or the error.
func printBatches(seqs []uint64, err error) int {
	if err != nil {
		fmt.Println("bad:", err)
		return 1
	}
	fmt.Print("batches ", len(seqs))
	for _, q := range seqs {
		fmt.Print(" ", q)
	}
	fmt.Println()
	return 0
}

// diskBatches checks that the batches of crashBatch on disk form a prefix
// of whole batches, and returns the inbox sequence number of each.
func diskBatches(s *Store) ([]uint64, error) {
	recs, err := s.EngineRecords()
	if err != nil {
		return nil, err
	}
	rec := map[string][]byte{}
	for _, r := range recs {
		if !strings.HasPrefix(r.Key, fillerKey) && !strings.HasPrefix(r.Key, reusePrefix) && !strings.HasPrefix(r.Key, gcPrefix) {
			rec[r.Key] = r.Value
		}
	}
	entries, _, err := s.Inbox(0, 1<<20)
	if err != nil {
		return nil, err
	}
	top := 0
	for rec[fmt.Sprintf("d/%08d", top)] != nil {
		top++
	}
	if len(entries) != top || (top > 0 && len(rec) != top+1) || (top == 0 && len(rec) != 0) {
		return nil, fmt.Errorf("%d batches, %d inbox entries, %d records: not whole batches", top, len(entries), len(rec))
	}
	if top > 0 && string(rec[fmt.Sprintf("c/%08d", top-1)]) != string(crashValue(top-1)) {
		return nil, fmt.Errorf("custody record of the last batch %d missing or wrong", top-1)
	}
	if err := checkGC(recs, top); err != nil {
		return nil, err
	}
	seqs := make([]uint64, top)
	for b, e := range entries {
		if string(e.Body) != fmt.Sprintf("batch %d", b) || e.ID != delivery(b).ID {
			return nil, fmt.Errorf("batch %d: inbox entry %q", b, e.Body)
		}
		if b > 0 && e.Seq <= seqs[b-1] {
			return nil, fmt.Errorf("sequence numbers not increasing at batch %d", b)
		}
		seqs[b] = e.Seq
	}
	return seqs, nil
}

// mountPower mounts a powerloss filesystem holding st, skipping the test
// where FUSE cannot be used. unmount is idempotent.
func mountPower(t *testing.T, st *powerloss.State) (fs *powerloss.FS, dir string, unmount func()) {
	t.Helper()
	fs = powerloss.New(st)
	dir = t.TempDir()
	srv, err := powerloss.Mount(fs, dir)
	if errors.Is(err, powerloss.ErrUnavailable) {
		t.Skipf("power-loss test skipped: %v (it needs root and /dev/fuse; CI runs it)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := false
	unmount = func() {
		if !done {
			done = true
			unmountServer(t, srv)
		}
	}
	t.Cleanup(unmount)
	return fs, dir, unmount
}

func unmountServer(t *testing.T, srv *fuse.Server) {
	t.Helper()
	if err := srv.Unmount(); err != nil {
		t.Errorf("unmount: %v", err)
	}
}

// gcRewrites counts the value log files the apply-gc children rewrote
// (powergc_test.go).
var gcRewrites int

// powerRound runs one child of kind on st until it acknowledged cutAfter
// batches, cuts the power and returns the durable state and the batches
// acknowledged before the cut (batch -> inbox seq).
func powerRound(t *testing.T, st *powerloss.State, kind string, cutAfter int) (*powerloss.State, map[int]uint64) {
	t.Helper()
	fs, mnt, unmount := mountPower(t, st)
	cmd := child(t, kind+":"+filepath.Join(mnt, "db"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]uint64{}
	sc := bufio.NewScanner(out)
	asked := false
	for len(acked) < cutAfter && sc.Scan() {
		var b int
		var seq uint64
		var n int
		if line := sc.Text(); line == "ready" {
			continue
		} else if line == "cut" { // the child asks for the cut now
			asked = true
			break
		} else if _, err := fmt.Sscanf(line, "gc %d", &n); err == nil {
			gcRewrites += n
			continue
		} else if _, err := fmt.Sscanf(line, "ack %d %d", &b, &seq); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q", line)
		}
		acked[b] = seq
	}
	// The cut comes while the child is still writing; everything after it
	// fails with EIO, so the child may die on its own.
	synced := fs.Cut()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	unmount()
	if len(acked) < cutAfter && !asked {
		t.Fatalf("child stopped after %d acknowledgements: %v", len(acked), sc.Err())
	}
	return synced, acked
}

// report mounts st, runs the report child and returns the inbox seqs of
// the whole batches on disk and the state after the child's clean close.
// An error says the store did not open or its batches are not whole.
func report(t *testing.T, st *powerloss.State, kind string) ([]uint64, *powerloss.State, error) {
	t.Helper()
	fs, mnt, unmount := mountPower(t, st)
	defer unmount()
	b, err := child(t, reportKind(kind)+":"+filepath.Join(mnt, "db")).Output()
	line := strings.TrimSpace(string(b))
	if err != nil {
		return nil, nil, fmt.Errorf("after the power cut: %v: %s", err, line)
	}
	f := strings.Fields(line)
	var n int
	if len(f) < 2 || f[0] != "batches" {
		t.Fatalf("report child said %q", line)
	}
	if _, err := fmt.Sscan(f[1], &n); err != nil || len(f) != n+2 {
		t.Fatalf("report child said %q", line)
	}
	seqs := make([]uint64, n)
	for i := range seqs {
		if _, err := fmt.Sscan(f[i+2], &seqs[i]); err != nil {
			t.Fatalf("report child said %q", line)
		}
	}
	return seqs, fs.Cut(), nil
}

// reportKind is the report child for the writer child kind.
func reportKind(kind string) string {
	switch kind {
	case "apply-history":
		return "report-history"
	case "apply-peers":
		return "report-peers"
	case "apply-discard":
		return "report-discard"
	}
	return "report"
}

// check reports the acknowledged batches that did not survive the cut.
func check(t *testing.T, synced *powerloss.State, acked map[int]uint64, kind string) ([]uint64, *powerloss.State, error) {
	t.Helper()
	seqs, after, err := report(t, synced, kind)
	if err != nil {
		return nil, nil, err
	}
	var lost []int
	for b, seq := range acked {
		if b >= len(seqs) || seqs[b] != seq {
			lost = append(lost, b)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return nil, nil, fmt.Errorf("%d of %d acknowledged batches lost: %v (%d whole batches on disk)", len(lost), len(acked), lost, len(seqs))
	}
	return seqs, after, nil
}

// powerRounds runs the child kind from one disk through a power cut after
// each count of acknowledgements in cuts, and fails unless every
// acknowledged batch survives each cut, whole. It returns how many
// batches were acknowledged.
func powerRounds(t *testing.T, kind string, cuts []int) int {
	t.Helper()
	var st *powerloss.State
	total := 0
	for round, cutAfter := range cuts {
		synced, acked := powerRound(t, st, kind, cutAfter)
		seqs, after, err := check(t, synced, acked, kind)
		if err != nil {
			t.Fatalf("round %d, power cut after %d acknowledgements: %v", round, cutAfter, err)
		}
		total += len(acked)
		t.Logf("round %d: cut after %d acks; %d whole batches on disk, every acknowledged one among them", round, cutAfter, len(seqs))
		st = after
	}
	return total
}

func TestPowerLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	cuts := make([]int, rounds)
	for i := range cuts {
		cuts[i] = 1 + rng.IntN(40)
	}
	total := powerRounds(t, "apply", cuts)
	t.Logf("%d power cuts, %d acknowledged batches checked", rounds, total)
}

// The negative control: the same run with a store that does not sync its
// commits loses acknowledged batches, so TestPowerLoss can fail.
func TestPowerLossCatchesMissingSync(t *testing.T) {
	// From an empty disk, and from a store that a synced run created and
	// closed cleanly.
	synced, acked := powerRound(t, nil, "apply-unsynced", 20)
	_, _, err := check(t, synced, acked, "apply")
	if err == nil {
		t.Fatalf("a store without synced commits kept all %d acknowledged batches over a power cut: the layer does not model power loss", len(acked))
	}
	t.Logf("unsynced store on an empty disk, as it must: %v", err)

	synced, acked = powerRound(t, nil, "apply", 10)
	_, st, err := check(t, synced, acked, "apply")
	if err != nil {
		t.Fatal(err)
	}
	synced, acked = powerRound(t, st, "apply-unsynced", 20)
	_, _, err = check(t, synced, acked, "apply")
	if err == nil {
		t.Fatalf("a store without synced commits kept all %d acknowledged batches over a power cut: the layer does not model power loss", len(acked))
	}
	t.Logf("unsynced store on an existing store, as it must: %v", err)
}
