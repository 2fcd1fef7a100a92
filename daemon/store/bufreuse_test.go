package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"meshd.dev/meshd/routing"
)

// The store reuses its per-batch buffers: a record's buffer goes back to a
// pool once the applier committed it, and a batch's ops, keys and inbox
// entries are built in scratch space. These tests attack that reuse: any
// slice into a reused buffer still read after the reuse (by badger, the
// applier, replay, a reader) shows as a wrong value.

// bufValue is a self-describing value: its key, version and length,
// then a pattern drawn from them. Its length varies, so that a reused
// buffer holds the stale tail of a longer value.
func bufValue(key string, version, n int) []byte {
	b := fmt.Appendf(nil, "%s#%d#%d|", key, version, n)
	for i := range n {
		b = append(b, byte(version*31+i*7+len(key)))
	}
	return b
}

// checkBufValue reports whether v is a value bufValue made for key.
func checkBufValue(key string, v []byte) error {
	i := bytes.IndexByte(v, '|')
	if i < 0 {
		return fmt.Errorf("no header in %q", v[:min(len(v), 40)])
	}
	f := strings.Split(string(v[:i]), "#")
	if len(f) != 3 {
		return fmt.Errorf("header %q", v[:i])
	}
	version, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("header %q", v[:i])
	}
	if want := bufValue(f[0], version, n); f[0] != key || !bytes.Equal(v, want) {
		return fmt.Errorf("value of %s holds %d bytes claiming %s version %d (%d bytes): corrupted", key, len(v), f[0], version, n)
	}
	return nil
}

// bufModel is what the store must hold: engine records and inbox
// bodies, each a copy made before the batch was handed over.
type bufModel struct {
	recs  map[string][]byte
	inbox map[uint64][]byte
	fapp  map[string][]byte
}

// bufBatch draws batch b: deliveries (some paired with their delivered
// record), records on a small key space (so that groups merge keys) and
// deletes, every length random.
func bufBatch(r *rand.Rand, b int) *routing.Ready {
	rd := &routing.Ready{}
	for i := range 1 + r.IntN(4) {
		d := delivery(b*8 + i)
		d.Broadcast, d.Signed = false, false
		d.ID[5], d.ID[6] = byte(b), byte(b>>8)
		d.Key = testKey(d.ID)
		d.Body = bufValue(fmt.Sprintf("body-%d-%d", b, i), b, r.IntN(3000))
		rd.Deliveries = append(rd.Deliveries, d)
		if r.IntN(2) == 0 {
			k := "d/" + hex.EncodeToString(d.Key[:])
			rd.Persist = append(rd.Persist, routing.Record{Key: k, Value: bufValue(k, b, r.IntN(500))})
		}
	}
	used := map[string]bool{}
	for range r.IntN(6) {
		k := fmt.Sprintf("c/%02d", r.IntN(24))
		if !used[k] {
			used[k] = true
			rd.Persist = append(rd.Persist, routing.Record{Key: k, Value: bufValue(k, b, r.IntN(6000))})
		}
	}
	if b%50 == 49 {
		// A batch bigger than half a (test) segment: logged as several
		// records, built one after the other in the same scratch array.
		for i := range 30 {
			k := fmt.Sprintf("b/%02d", i)
			rd.Persist = append(rd.Persist, routing.Record{Key: k, Value: bufValue(k, b, 5000+r.IntN(3000))})
		}
	}
	for range r.IntN(3) {
		k := fmt.Sprintf("c/%02d", r.IntN(24))
		if !used[k] {
			used[k] = true
			rd.Deletes = append(rd.Deletes, k)
		}
	}
	return rd
}

// note adds rd, whose deliveries got seqs, to the model.
func (m *bufModel) note(rd *routing.Ready, seqs []uint64) {
	for _, p := range rd.Persist {
		m.recs[p.Key] = bytes.Clone(p.Value)
	}
	for _, k := range rd.Deletes {
		delete(m.recs, k)
	}
	for i, d := range rd.Deliveries {
		m.inbox[seqs[i]] = bytes.Clone(d.Body)
	}
}

// scribble overwrites every buffer of rd: the store must not keep any.
func scribble(rd *routing.Ready) {
	for _, p := range rd.Persist {
		for i := range p.Value {
			p.Value[i] = 0xa5
		}
	}
	for _, d := range rd.Deliveries {
		for i := range d.Body {
			d.Body[i] = 0x5a
		}
	}
}

// check compares the store with the model: every record and every inbox
// entry, byte for byte.
func (m *bufModel) check(t *testing.T, s *Store, when string) {
	t.Helper()
	got := records(t, s)
	if len(got) != len(m.recs) {
		t.Fatalf("%s: %d records, want %d", when, len(got), len(m.recs))
	}
	for k, v := range m.recs {
		if got[k] != string(v) {
			t.Fatalf("%s: record %s: %d bytes (%v), want %d", when, k, len(got[k]), checkBufValue(k, []byte(got[k])), len(v))
		}
	}
	entries, _, err := s.Inbox(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(m.inbox) {
		t.Fatalf("%s: %d inbox entries, want %d", when, len(entries), len(m.inbox))
	}
	for _, e := range entries {
		if want, ok := m.inbox[e.Seq]; !ok || !bytes.Equal(e.Body, want) {
			t.Fatalf("%s: inbox entry %d: %d bytes, want %d (known %v)", when, e.Seq, len(e.Body), len(want), ok)
		}
	}
	fapp := map[string][]byte{}
	if err := s.FAPPScan(FAPPPrefix, func(k string, v []byte) error {
		fapp[k] = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(fapp) != len(m.fapp) {
		t.Fatalf("%s: %d FAPP records, want %d", when, len(fapp), len(m.fapp))
	}
	for k, v := range m.fapp {
		if !bytes.Equal(fapp[k], v) {
			t.Fatalf("%s: FAPP record %s: %d bytes, want %d", when, k, len(fapp[k]), len(v))
		}
	}
}

// TestWALBufferReuse: 400 batches of random sizes through ApplyAsync,
// two staged at a time as the node does, the caller's buffers overwritten
// as soon as ApplyAsync returns, small segments (rotations and
// checkpoints), reads and acknowledgements in between (they make the
// applier apply while batches are logged): every record and inbox entry
// reads back as written, live, after a power cut (replay of records
// written into reused buffers) and after a clean reopen.
func TestWALBufferReuse(t *testing.T) {
	old := walSegSize
	walSegSize = 256 << 10
	t.Cleanup(func() { walSegSize = old })
	s := openT(t, t.TempDir())
	r := rand.New(rand.NewPCG(1, 2))
	m := &bufModel{recs: map[string][]byte{}, inbox: map[uint64][]byte{}, fapp: map[string][]byte{}}
	var pending []<-chan error
	for b := range 400 {
		rd := bufBatch(r, b)
		snap := &routing.Ready{Persist: clonePersist(rd.Persist), Deletes: rd.Deletes, Deliveries: cloneDeliveries(rd.Deliveries)}
		before := loggedSeq(s)
		seqs, done, err := s.ApplyAsync(rd)
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		if n := loggedSeq(s) - before; b%50 == 49 && n < 2 {
			t.Fatalf("batch %d: logged as %d records, want it split", b, n)
		}
		scribble(rd)
		m.note(snap, seqs)
		if pending = append(pending, done); len(pending) > 2 {
			if err := <-pending[0]; err != nil {
				t.Fatal(err)
			}
			pending = pending[1:]
		}
		switch {
		case b%41 == 40:
			m.check(t, s, fmt.Sprintf("after batch %d", b))
		case b%13 == 12:
			// Acknowledgements, alone or with FAPP records (one record
			// through logAndWait), the values overwritten afterwards.
			var ack []uint64
			for seq := range m.inbox {
				if r.IntN(3) == 0 {
					ack = append(ack, seq)
				}
			}
			fb := FAPPBatch{Put: map[string][]byte{}, Ack: ack}
			for range r.IntN(3) {
				k := fmt.Sprintf("f/t/%02d", r.IntN(8))
				fb.Put[k] = bufValue(k, b, r.IntN(4000))
				m.fapp[k] = bytes.Clone(fb.Put[k])
			}
			if err := s.FAPPWrite(fb); err != nil {
				t.Fatal(err)
			}
			for _, v := range fb.Put {
				clear(v)
			}
			for _, seq := range ack {
				delete(m.inbox, seq)
			}
		}
	}
	for _, done := range pending {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(m.fapp) == 0 {
		t.Fatal("no FAPP record written")
	}
	if s.wal.ckpts.Load() < 3 {
		t.Fatalf("%d checkpoints: the segments did not rotate", s.wal.ckpts.Load())
	}
	cut := crashCopy(t, s)
	unsyncedGone(t, cut, s.wal.durable.Load())
	m.check(t, s, "live")
	c := openT(t, cut)
	m.check(t, c, "after a power cut")
	c.Close()
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m.check(t, openT(t, dir), "after reopening")
}

// loggedSeq is the seq of the last record logged.
func loggedSeq(s *Store) uint64 {
	s.wal.mu.Lock()
	defer s.wal.mu.Unlock()
	return s.wal.logged
}

func clonePersist(ps []routing.Record) []routing.Record {
	out := make([]routing.Record, len(ps))
	for i, p := range ps {
		out[i] = routing.Record{Key: p.Key, Value: bytes.Clone(p.Value)}
	}
	return out
}

func cloneDeliveries(ds []routing.Delivery) []routing.Delivery {
	out := make([]routing.Delivery, len(ds))
	for i, d := range ds {
		out[i] = d
		out[i].Body = bytes.Clone(d.Body)
	}
	return out
}

// TestWALBufferReuseReaders: readers read every record and inbox entry
// while one writer logs batches and the applier applies them (each read
// makes it apply what is queued): every value any reader sees is one a
// writer wrote for that key, never bytes of another record's reused
// buffer. Run with -race: a buffer written while the applier still
// decodes it is a race.
func TestWALBufferReuseReaders(t *testing.T) {
	old := walSegSize
	walSegSize = 256 << 10
	t.Cleanup(func() { walSegSize = old })
	s := openT(t, t.TempDir())
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- bufReader(s, g, stop)
		}()
	}
	// A third reader backs up the store over and over; the last backup
	// is loaded and checked below.
	var backup bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				if n == 0 {
					errs <- errors.New("no backup taken")
				}
				return
			default:
			}
			backup.Reset()
			if err := s.Backup(&backup); err != nil {
				errs <- err
				return
			}
		}
	}()
	r := rand.New(rand.NewPCG(3, 4))
	for b := range 300 {
		rd := bufBatch(r, b)
		if _, err := s.Apply(rd); err != nil {
			t.Fatal(err)
		}
		scribble(rd)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "loaded")
	if err := Load(dir, &backup, quiet); err != nil {
		t.Fatal(err)
	}
	l := openT(t, dir)
	if len(records(t, l)) == 0 {
		t.Fatal("the loaded backup holds no record")
	}
	for g := range 2 {
		if err := bufReaderOnce(l, g, 0); err != nil {
			t.Fatalf("the loaded backup: %v", err)
		}
	}
}

// bufReader reads until stop: records (reader 0) or the inbox (1),
// checking each value.
func bufReader(s *Store, g int, stop <-chan struct{}) error {
	for n := 0; ; n++ {
		select {
		case <-stop:
			if n == 0 {
				return fmt.Errorf("reader %d never read", g)
			}
			return nil
		default:
		}
		if err := bufReaderOnce(s, g, n); err != nil {
			return err
		}
	}
}

// bufReaderOnce reads every record (g 0) or inbox entry (1) of s and
// checks each value.
func bufReaderOnce(s *Store, g, n int) error {
	if g == 0 {
		recs, err := s.EngineRecords()
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if err := checkBufValue(rec.Key, rec.Value); err != nil {
				return fmt.Errorf("read %d: %w", n, err)
			}
		}
		return nil
	}
	entries, _, err := s.Inbox(0, 1<<20)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := checkBufBody(e.Body); err != nil {
			return fmt.Errorf("read %d: inbox entry %d: %w", n, e.Seq, err)
		}
	}
	return nil
}

// checkBufBody checks a delivery body of bufBatch (its key is in its
// header).
func checkBufBody(v []byte) error {
	i := bytes.IndexByte(v, '#')
	if i < 0 {
		return fmt.Errorf("no header in %q", v[:min(len(v), 40)])
	}
	return checkBufValue(string(v[:i]), v)
}
