package store

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// version is one version of a key that badger holds: a delete, or a set
// of a value of n bytes.
type version struct {
	del bool
	n   int
}

// badgerVersions returns every version badger holds of the engine keys
// (the writes it was given, until a compaction drops the old ones).
func badgerVersions(t *testing.T, s *Store) map[string][]version {
	t.Helper()
	out := map[string][]version{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(enginePrefix), AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(item.Key()[len(enginePrefix):])
			out[k] = append(out[k], version{del: item.IsDeletedOrExpired(), n: int(item.ValueSize())})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWALCoalesce: a custody record set by one batch and deleted by the
// next, and a session record rewritten by every batch, reach badger as
// little as possible when the applier applies their records together:
// the custody record not at all (badger never held it), the session
// record as its last value; a record badger holds, set again and
// deleted, as one delete. An applier that applies each record after its
// sync gives badger two versions of the custody record, one with its 400
// bytes, and one version of the session record per batch.
func TestWALCoalesce(t *testing.T) {
	s := openT(t, t.TempDir())
	apply(t, s, rec("c/old", "in badger"))
	records(t, s) // applied
	custody := bytes.Repeat([]byte{7}, 400)
	apply(t, s, &routing.Ready{Persist: []routing.Record{{Key: "c/m1", Value: custody}, {Key: "s/peer", Value: []byte("1")}, {Key: "c/old", Value: custody}}})
	apply(t, s, &routing.Ready{Persist: []routing.Record{{Key: "s/peer", Value: []byte("2")}}, Deletes: []string{"c/m1", "c/old"}})
	apply(t, s, rec("s/peer", "3"))
	if got := records(t, s); len(got) != 1 || got["s/peer"] != "3" {
		t.Fatalf("records: %v", got)
	}
	v := badgerVersions(t, s)
	if got := v["c/m1"]; len(got) != 0 {
		t.Errorf("custody record set and deleted: badger got %+v, want nothing", got)
	}
	if got := v["c/old"]; len(got) != 2 || !got[0].del || got[1].n != len("in badger") {
		t.Errorf("record in badger, set and deleted: badger got %+v, want its first value and one delete", got)
	}
	if got := v["s/peer"]; len(got) != 1 || got[0].del || got[0].n != 1 {
		t.Errorf("session record written three times: badger got %+v, want one set", got)
	}
	st := s.ApplierStats()
	t.Logf("applier: %+v", st)
	if st.Records != 4 || st.Applies != 2 || st.OpsIn != 1+7 || st.OpsOut != 1+2 {
		t.Errorf("applier counters %+v, want 4 records in 2 applies, 1+7 ops merged into 1+2", st)
	}
}

// TestCoalesce: of the ops on one key only the last is kept, at its place.
func TestCoalesce(t *testing.T) {
	o := func(k, v string) op { return op{key: []byte(k), value: []byte(v), del: v == ""} }
	in := []op{o("a", "1"), o("b", "1"), o("a", ""), o("c", "1"), o("b", "2"), o("a", "3")}
	got := coalesce(in, map[string]int{})
	want := []op{o("c", "1"), o("b", "2"), o("a", "3")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("coalesce: %v, want %v", got, want)
	}
	// A delete into which a set was merged is marked; one after deletes
	// only is not.
	in = []op{o("a", "1"), o("b", ""), o("a", ""), o("b", "")}
	got = coalesce(in, map[string]int{})
	want = []op{o("a", ""), o("b", "")}
	want[0].mergedSet = true
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("coalesce: %v, want %v", got, want)
	}
	one := []op{o("a", "1"), o("b", "")}
	if got := coalesce(one, map[string]int{}); fmt.Sprint(got) != fmt.Sprint(one) {
		t.Fatalf("distinct keys: %v", got)
	}
}

// lagBatch is batch b of TestWALLagCrash: a custody record of 8 KB (the
// previous batch's is deleted), a delivered record, the session record
// rewritten, and one delivery. The delivered records of batches from
// lagBig on are big (450 KB): three of them are more than the applier
// lets queue and more than one transaction takes.
func lagBatch(b int) *routing.Ready {
	size := 8000
	if b >= lagBig {
		size = 450_000
	}
	rd := &routing.Ready{Persist: []routing.Record{
		{Key: fmt.Sprintf("c/%08d", b), Value: bytes.Repeat([]byte{byte(b)}, 8000)},
		{Key: fmt.Sprintf("d/%08d", b), Value: bytes.Repeat([]byte{byte(b + 1)}, size)},
		{Key: "s/peer", Value: []byte(strconv.Itoa(b))},
	}, Deliveries: []routing.Delivery{delivery(b)}}
	rd.Deliveries[0].Body = fmt.Appendf(nil, "batch %d", b)
	if b > 0 {
		rd.Deletes = []string{fmt.Sprintf("c/%08d", b-1)}
	}
	return rd
}

const lagBig = 2*walApplyLag + 3

// checkLagBatches checks that the store in dir holds exactly batches
// 0..n-1 of lagBatch: every delivered record and inbox entry, the last
// custody record only, the last session record, the inbox counter.
func checkLagBatches(t *testing.T, dir string, n int) {
	t.Helper()
	c := openT(t, dir)
	got := records(t, c)
	want := map[string]string{"c/" + fmt.Sprintf("%08d", n-1): string(lagBatch(n - 1).Persist[0].Value), "s/peer": strconv.Itoa(n - 1)}
	for b := range n {
		want[fmt.Sprintf("d/%08d", b)] = string(lagBatch(b).Persist[1].Value)
	}
	if len(got) != len(want) {
		t.Errorf("%d records after the crash, want %d (batches 0..%d)", len(got), len(want), n-1)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record %s: %d bytes, want %d", k, len(got[k]), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("record %s is back", k)
		}
	}
	entries, _, err := c.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d inbox entries, want %d", len(entries), n)
	}
	for b, e := range entries {
		if string(e.Body) != fmt.Sprintf("batch %d", b) {
			t.Fatalf("inbox entry %d: %q", b, e.Body)
		}
	}
	// The inbox counter survived with its last value: a new delivery
	// takes the next number.
	seqs, err := c.Apply(&routing.Ready{Deliveries: []routing.Delivery{delivery(999)}})
	if err != nil || seqs[0] != entries[n-1].Seq+1 {
		t.Fatalf("next delivery got %v (%v), want %d", seqs, err, entries[n-1].Seq+1)
	}
}

// lagCrash copies s as a power cut would leave it and checks that the
// copy holds batches 0..n-1.
func lagCrash(t *testing.T, s *Store, n int) {
	t.Helper()
	dir := crashCopy(t, s)
	unsyncedGone(t, dir, s.wal.durable.Load())
	checkLagBatches(t, dir, n)
}

// queued returns the number of records waiting for the applier.
func queued(s *Store) int {
	s.wal.mu.Lock()
	defer s.wal.mu.Unlock()
	return len(s.wal.applyQ)
}

// TestWALLagCrash: power cuts while the applier lags (records synced and
// acknowledged, not yet in badger: fewer than walApplyLag, or than
// walApplyLagBytes) and while it is in the middle of a group of records
// it split over several transactions (badger holds some keys of the
// group at their new values, others at their old ones): every
// acknowledged batch survives, no deleted custody record comes back,
// the session record and the inbox counter have their last values.
func TestWALLagCrash(t *testing.T) {
	old := walSegSize
	walSegSize = 8 << 20 // no rotation: no checkpoint moves the applier
	t.Cleanup(func() { walSegSize = old })
	// Values in the LSM tree (badger's default threshold): the big
	// batches' values count in full towards badger's transaction limit,
	// so that an apply is split (with the store's threshold they go to
	// the value log and fit in one transaction).
	s := openT(t, t.TempDir(), withValueThreshold(1<<20))
	gate, mid := make(chan struct{}), make(chan struct{}, 1)
	setHook(s, func() {
		s.wal.commitHook = func() {
			select {
			case mid <- struct{}{}:
				<-gate
			default:
			}
		}
	})
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	// Small batches: the applier waits for walApplyLag records.
	for b := range lagBig {
		apply(t, s, lagBatch(b))
		if n := b + 1; n%walApplyLag == 0 {
			// A full queue: let the applier take exactly these, or
			// it may take the next batch's record with them.
			waitAllApplied(s)
		}
		if n := b + 1; n%walApplyLag == 3 {
			waitIdle(s)
			if q := queued(s); q != 3 {
				t.Fatalf("after batch %d: %d records queued for the applier, want 3", b, q)
			}
			lagCrash(t, s, n)
		}
	}
	records(t, s) // a reader: the applier applies the 3 queued records
	if q := queued(s); q != 0 {
		t.Fatalf("%d records queued after a read", q)
	}
	// Big batches: two wait, the third is applied with them over two
	// transactions; the cut comes after the first.
	for b := lagBig; b < lagBig+2; b++ {
		apply(t, s, lagBatch(b))
		if q := queued(s); q != b-lagBig+1 {
			t.Fatalf("after big batch %d: %d records queued, want %d", b, q, b-lagBig+1)
		}
		lagCrash(t, s, b+1)
	}
	apply(t, s, lagBatch(lagBig+2))
	<-mid
	lagCrash(t, s, lagBig+3)
	release()
	lagCrash(t, s, lagBig+3)
	st := s.ApplierStats()
	t.Logf("applier: %+v", st)
	if st.Applies != 4 || st.Records != lagBig+3 {
		t.Fatalf("%d applies of %d records, want 4 of %d", st.Applies, st.Records, lagBig+3)
	}
}

// waitIdle waits until the applier is not in a group: every record
// logged is applied or queued.
func waitIdle(s *Store) {
	w := s.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && w.applied+uint64(len(w.applyQ)) < w.logged {
		w.cond.Wait()
	}
}

// waitAllApplied waits until the applier has applied every record
// logged so far (without being asked to, as a reader would).
func waitAllApplied(s *Store) {
	w := s.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && w.applied < w.logged {
		w.cond.Wait()
	}
}

// BenchmarkReadAfterLag: what a reader that needs badger current (Inbox,
// and through it msg.inbox and msg.ack; Ack; FAPP writes with
// acknowledgements) pays when the applier lets records queue: the apply
// of the walApplyLag-1 records a sender's batches left (36 custody
// records of 400 bytes set, the previous batch's 36 deleted), against a
// read with nothing queued. The records are written with the timer
// stopped.
//
//	go test -run '^$' -bench ReadAfterLag ./daemon/store
func BenchmarkReadAfterLag(b *testing.B) {
	for _, queued := range []int{0, walApplyLag - 1} {
		b.Run(fmt.Sprintf("queued=%d", queued), func(b *testing.B) {
			s := openT(b, b.TempDir())
			val := bytes.Repeat([]byte{1}, 400)
			batch := 0
			for range b.N {
				b.StopTimer()
				for range walApplyLag - 1 {
					rd := &routing.Ready{}
					for i := range 36 {
						rd.Persist = append(rd.Persist, routing.Record{Key: fmt.Sprintf("c/%08d/%02d", batch, i), Value: val})
						if batch > 0 {
							rd.Deletes = append(rd.Deletes, fmt.Sprintf("c/%08d/%02d", batch-1, i))
						}
					}
					if _, err := s.Apply(rd); err != nil {
						b.Fatal(err)
					}
					batch++
				}
				if queued == 0 {
					if err := s.waitApplied(); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, _, err := s.Inbox(0, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
