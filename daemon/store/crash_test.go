package store

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"meshd.dev/meshd/routing"
)

// The kill -9 test re-executes the test binary as a child (env childEnv
// names the mode and directory). The child applies batches forever and
// prints "ack <batch> <seq>" after each Apply returns; the parent kills it
// with SIGKILL after a seeded random number of acknowledgements and checks
// that every acknowledged batch is on disk, complete.
const childEnv = "MESHD_STORE_TEST_CHILD"

// Batch b (0, 1, ...) writes c/<b> and d/<b>, deletes c/<b-1> and delivers
// one message whose body is "batch <b>": after a crash, every batch on disk
// must be whole and batches must form a prefix.
func crashBatch(b int) *routing.Ready {
	rd := &routing.Ready{
		Persist: []routing.Record{
			{Key: fmt.Sprintf("c/%08d", b), Value: crashValue(b)},
			{Key: fmt.Sprintf("d/%08d", b), Value: []byte(strconv.Itoa(b))},
		},
		Deliveries: []routing.Delivery{delivery(b)},
	}
	rd.Deliveries[0].Body = []byte(fmt.Sprintf("batch %d", b))
	if b > 0 {
		rd.Deletes = []string{fmt.Sprintf("c/%08d", b-1)}
	}
	return rd
}

func crashValue(b int) []byte {
	v := make([]byte, 1400)
	for i := range v {
		v[i] = byte(b + i)
	}
	return v
}

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	kind, dir, _ := strings.Cut(mode, ":")
	if kind == "report" {
		return runReport(dir)
	}
	if kind == "apply-reuse" {
		return runReuse(dir)
	}
	if kind == "apply-history" {
		return runApplyHistory(dir)
	}
	if kind == "report-history" {
		return runReportHistory(dir)
	}
	if kind == "apply-gc" {
		return runApplyGC(dir)
	}
	if kind == "apply-discard" {
		return runApplyDiscard(dir)
	}
	if kind == "report-discard" {
		return runReportDiscard(dir)
	}
	if kind == "apply-peers" {
		return runApplyPeers(dir)
	}
	if kind == "report-peers" {
		return runReportPeers(dir)
	}
	s, err := openForChild(kind, dir)
	switch kind {
	case "lock":
		if errors.Is(err, ErrLocked) {
			fmt.Printf("locked: %v\n", err)
			return 0
		}
		fmt.Printf("unexpected: %v\n", err)
		return 1
	case "apply-async", "apply-async-rotate":
		if err != nil {
			fmt.Println("open:", err)
			return 1
		}
		if kind == "apply-async-rotate" {
			return runPipelined(s, fillerSize)
		}
		return runPipelined(s, 0)
	case "apply", "apply-unsynced":
		if err != nil {
			fmt.Println("open:", err)
			return 1
		}
		next, ok := childReady(s)
		if !ok {
			return 1
		}
		for b := next; ; b++ {
			seqs, err := s.Apply(crashBatch(b))
			if err != nil {
				fmt.Println("apply:", err)
				return 1
			}
			fmt.Printf("ack %d %d\n", b, seqs[0])
		}
	}
	return 2
}

func child(t *testing.T, mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestKill9(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	acked := map[int]uint64{} // batch -> inbox seq, over all rounds
	lastSeq := uint64(0)
	checked := 0
	for round := range rounds {
		cmd := child(t, "apply:"+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(60)
		sc := bufio.NewScanner(out)
		n := 0
		for n < killAfter && sc.Scan() {
			line := sc.Text()
			var b int
			var seq uint64
			if line == "ready" {
				continue
			}
			if _, err := fmt.Sscanf(line, "ack %d %d", &b, &seq); err != nil {
				t.Fatalf("child said %q", line)
			}
			if seq <= lastSeq {
				t.Fatalf("round %d: batch %d got seq %d after %d", round, b, seq, lastSeq)
			}
			lastSeq = seq
			acked[b] = seq
			n++
		}
		if n < killAfter {
			t.Fatalf("child stopped early: %v", sc.Err())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		s, err := Open(dir, quiet)
		if err != nil {
			t.Fatalf("reopen after kill %d: %v", round, err)
		}
		recs, err := s.EngineRecords()
		if err != nil {
			t.Fatal(err)
		}
		_, inbox := state(t, s)
		rec := map[string][]byte{}
		for _, r := range recs {
			rec[r.Key] = r.Value
		}
		// Batches on disk: d/0 .. d/top-1, a prefix.
		top := 0
		for rec[fmt.Sprintf("d/%08d", top)] != nil {
			top++
		}
		if len(inbox) != top || len(rec) != top+1 {
			t.Fatalf("round %d: %d batches, %d inbox entries, %d records", round, top, len(inbox), len(rec))
		}
		for b := range top {
			e := inbox[b]
			if string(e.Body) != fmt.Sprintf("batch %d", b) || e.ID != delivery(b).ID {
				t.Fatalf("batch %d: inbox entry %q", b, e.Body)
			}
			if seq, ok := acked[b]; ok && seq != e.Seq {
				t.Fatalf("batch %d acknowledged with seq %d, on disk %d", b, seq, e.Seq)
			}
			if b > 0 && e.Seq <= inbox[b-1].Seq {
				t.Fatalf("sequence numbers not increasing at batch %d", b)
			}
		}
		if top > 0 && string(rec[fmt.Sprintf("c/%08d", top-1)]) != string(crashValue(top-1)) {
			t.Fatalf("round %d: custody record of the last batch %d missing or wrong", round, top-1)
		}
		for b := range acked {
			if b >= top {
				t.Fatalf("round %d: acknowledged batch %d lost (only %d on disk)", round, b, top)
			}
		}
		checked += len(acked)
		if top > 0 {
			lastSeq = inbox[top-1].Seq // unacknowledged but committed batches count too
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acks; %d batches on disk, all %d acknowledged present", round, killAfter, top, len(acked))
	}
	t.Logf("%d kills; %d distinct acknowledged batches, %d batch checks in all", rounds, len(acked), checked)
}

func TestLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	out, err := child(t, "lock:"+dir).Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "another meshd") {
		t.Fatalf("message %q does not say another meshd may be running", out)
	}
	t.Logf("%s", out)
	s.Close()
	// Once closed, the directory is free again.
	s2, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

// childReady tells the parent a child's store is open, after the batch
// the child goes on from (crashBatchesDone); false if it could not tell.
func childReady(s *Store) (next int, ok bool) {
	next, err := crashBatchesDone(s)
	if err != nil {
		fmt.Println("records:", err)
		return 0, false
	}
	fmt.Println("ready")
	return next, true
}

// crashBatchesDone is the number of batches a child's store holds (one
// "d/" record each): the batch it goes on from.
func crashBatchesDone(s *Store) (int, error) {
	recs, err := s.EngineRecords()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Key, "d/") {
			n++
		}
	}
	return n, nil
}
