package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

var (
	quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	quiet       = WithLogger(quietLogger)
)

func openT(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, append([]Option{quiet}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func delivery(i int) routing.Delivery {
	d := routing.Delivery{
		Type:    protocol.Type(i % 7),
		Body:    []byte(fmt.Sprintf("message %d", i)),
		Created: protocol.Timestamp(1000 + i),
		Expires: protocol.Timestamp(5000 + i),
	}
	d.ID[0], d.ID[15] = byte(i), byte(i>>8)
	d.Key = testKey(d.ID)
	d.From[1] = byte(i)
	d.Sender.SigningKey[2] = byte(i)
	d.Sender.KEMKeyHash[3] = byte(i)
	if i%3 == 0 {
		d.Broadcast, d.Signed = true, i%2 == 0
		d.Channel = protocol.ChannelID{1, 2, 3, byte(i)}
	}
	return d
}

// testKey stands for the envelope key of the message with id (the engine
// keys its delivered records on it; the inbox does not keep it).
func testKey(id protocol.MessageID) protocol.EnvelopeKey {
	k := protocol.EnvelopeKey(id)
	k[1] ^= 0xee
	return k
}

// idHex names the engine's delivered record of d: its envelope key.
func idHex(d routing.Delivery) string { return testKey(d.ID).String() }

var clock = WithClock(func() time.Time { return time.UnixMilli(1_700_000_000_123) })

func TestRoundTrip(t *testing.T) {
	s := openT(t, t.TempDir(), clock)
	d1, d2 := delivery(1), delivery(3)
	seqs, err := s.Apply(&routing.Ready{
		Persist:    []routing.Record{{Key: "seq", Value: []byte{0, 0, 0, 7}}, {Key: "d/" + idHex(d1), Value: []byte{1, 2, 3, 4}}, {Key: "c/aa", Value: bytes.Repeat([]byte{9}, 1400)}},
		Deliveries: []routing.Delivery{d1, d2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seqs, []uint64{1, 2}) {
		t.Fatalf("seqs %v", seqs)
	}
	recs, err := s.EngineRecords()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key)
	}
	want := []string{"c/aa", "d/" + idHex(d1), "seq"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	entries, next, err := s.Inbox(0, 10)
	if err != nil || next != 2 || len(entries) != 2 {
		t.Fatalf("Inbox: %v %d %v", len(entries), next, err)
	}
	for i, d := range []routing.Delivery{d1, d2} {
		e := entries[i]
		d.Key = protocol.EnvelopeKey{} // not kept in the inbox
		if e.Seq != uint64(i+1) || !reflect.DeepEqual(e.Delivery, d) || e.Received.UnixMilli() != 1_700_000_000_123 {
			t.Errorf("entry %d: %+v, want %+v", i, e, d)
		}
	}
	// Deletes, paging and Ack.
	if _, err := s.Apply(&routing.Ready{Deletes: []string{"c/aa"}}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.EngineRecords(); len(recs) != 2 {
		t.Fatalf("after delete: %d records", len(recs))
	}
	page, next, err := s.Inbox(0, 1)
	if err != nil || len(page) != 1 || next != 1 {
		t.Fatalf("page 1: %d %d %v", len(page), next, err)
	}
	page, next, err = s.Inbox(next, 1)
	if err != nil || len(page) != 1 || next != 2 || page[0].Seq != 2 {
		t.Fatalf("page 2: %d %d %v", len(page), next, err)
	}
	page, next, err = s.Inbox(next, 1)
	if err != nil || len(page) != 0 || next != 2 {
		t.Fatalf("page 3: %d %d %v", len(page), next, err)
	}
	if err := s.Ack(1, 1, 99); err != nil {
		t.Fatal(err)
	}
	if s.InboxLen() != 1 {
		t.Fatalf("InboxLen %d", s.InboxLen())
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Inbox != 1 || st.NextInboxSeq != 3 || st.Engine["d/"] != 1 || st.Engine["seq"] != 1 || st.Engine["c/"] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeleteWinsOverPersist(t *testing.T) {
	s := openT(t, t.TempDir())
	if _, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "c/x", Value: []byte("v")}}, Deletes: []string{"c/x"}}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.EngineRecords(); len(recs) != 0 {
		t.Fatalf("records %v", recs)
	}
}

func TestBadKeys(t *testing.T) {
	s := openT(t, t.TempDir())
	for _, k := range []string{"", "a b", "é", string(make([]byte, MaxEngineKeyLen+1))} {
		_, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "ok", Value: nil}, {Key: k}}})
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("key %q: err %v", k, err)
		}
		_, err = s.Apply(&routing.Ready{Deletes: []string{k}})
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("delete %q: err %v", k, err)
		}
	}
	if recs, _ := s.EngineRecords(); len(recs) != 0 {
		t.Fatalf("records %v", recs)
	}
}

// state is everything visible in a store.
func state(t *testing.T, s *Store) ([]routing.Record, []InboxEntry) {
	t.Helper()
	recs, err := s.EngineRecords()
	if err != nil {
		t.Fatal(err)
	}
	var all []InboxEntry
	after := uint64(0)
	for {
		page, next, err := s.Inbox(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return recs, all
		}
		all = append(all, page...)
		after = next
	}
}

func TestApplyAtomic(t *testing.T) {
	fail := errors.New("injected failure")
	var failing bool
	s := openT(t, t.TempDir())
	s.cfg.beforeCommit = func() error {
		if failing {
			return fail
		}
		return nil
	}
	d := delivery(5)
	if _, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "c/1", Value: []byte("one")}}, Deliveries: []routing.Delivery{delivery(4)}}); err != nil {
		t.Fatal(err)
	}
	recs0, inbox0 := state(t, s)

	t.Run("failure before commit", func(t *testing.T) {
		failing = true
		defer func() { failing = false }()
		_, err := s.Apply(&routing.Ready{
			Persist:    []routing.Record{{Key: "d/" + idHex(d), Value: []byte{0, 0, 0, 1}}, {Key: "c/2", Value: []byte("two")}},
			Deletes:    []string{"c/1"},
			Deliveries: []routing.Delivery{d, delivery(6)},
		})
		if !errors.Is(err, fail) {
			t.Fatalf("err %v", err)
		}
		recs, inbox := state(t, s)
		if !reflect.DeepEqual(recs, recs0) || !reflect.DeepEqual(inbox, inbox0) || s.InboxLen() != 1 {
			t.Fatalf("partial batch visible: %v %v", recs, inbox)
		}
	})
	t.Run("record too big", func(t *testing.T) {
		_, err := s.Apply(&routing.Ready{
			Persist:    []routing.Record{{Key: "c/2", Value: []byte("two")}, {Key: "c/huge", Value: make([]byte, 1<<20)}},
			Deletes:    []string{"c/1"},
			Deliveries: []routing.Delivery{d},
		})
		if !errors.Is(err, ErrBatchTooBig) {
			t.Fatalf("err %v", err)
		}
		recs, inbox := state(t, s)
		if !reflect.DeepEqual(recs, recs0) || !reflect.DeepEqual(inbox, inbox0) {
			t.Fatalf("partial batch visible: %d records, %d entries", len(recs), len(inbox))
		}
	})
	t.Run("then success, sequence numbers not burnt", func(t *testing.T) {
		seqs, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "d/" + idHex(d), Value: []byte{0, 0, 0, 1}}}, Deletes: []string{"c/1"}, Deliveries: []routing.Delivery{d}})
		if err != nil || !reflect.DeepEqual(seqs, []uint64{2}) {
			t.Fatalf("seqs %v err %v", seqs, err)
		}
		recs, inbox := state(t, s)
		if len(recs) != 1 || recs[0].Key != "d/"+idHex(d) || len(inbox) != 2 || inbox[1].ID != d.ID {
			t.Fatalf("got %v %v", recs, inbox)
		}
	})
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: fmt.Sprintf("c/%d", i), Value: []byte{byte(i)}}}, Deliveries: []routing.Delivery{delivery(i), delivery(i + 10)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(9, 10); err != nil { // the last two: the counter must not go back
		t.Fatal(err)
	}
	recs1, inbox1 := state(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Apply(&routing.Ready{Deletes: []string{"x"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}

	s = openT(t, dir)
	recs2, inbox2 := state(t, s)
	if !reflect.DeepEqual(recs1, recs2) || !reflect.DeepEqual(inbox1, inbox2) {
		t.Fatal("state changed across restart")
	}
	if s.InboxLen() != 8 {
		t.Fatalf("InboxLen %d", s.InboxLen())
	}
	seqs, err := s.Apply(&routing.Ready{Deliveries: []routing.Delivery{delivery(42)}})
	if err != nil || !reflect.DeepEqual(seqs, []uint64{11}) {
		t.Fatalf("seqs %v err %v", seqs, err)
	}
}

func TestCorruptOnDisk(t *testing.T) {
	s := openT(t, t.TempDir())
	if _, err := s.Apply(&routing.Ready{Deliveries: []routing.Delivery{delivery(1), delivery(2), delivery(3)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.waitApplied(); err != nil {
		t.Fatal(err)
	}
	// Break entry 2 and an engine key behind the store's back.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(inboxKey(2), []byte{1, 2, 3}); err != nil {
			return err
		}
		if err := txn.Set([]byte("e/bad key"), []byte("v")); err != nil {
			return err
		}
		return txn.Set([]byte("e/good"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	page, next, err := s.Inbox(0, 10)
	if !errors.Is(err, ErrCorrupt) || len(page) != 1 || next != 1 {
		t.Fatalf("Inbox: %d entries, next %d, err %v", len(page), next, err)
	}
	t.Log(err)
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if page, _, err := s.Inbox(0, 10); err != nil || len(page) != 2 {
		t.Fatalf("after ack: %d %v", len(page), err)
	}
	recs, err := s.EngineRecords()
	if !errors.Is(err, ErrCorrupt) || len(recs) != 1 || recs[0].Key != "good" {
		t.Fatalf("EngineRecords: %v %v", recs, err)
	}
}

func TestParseInboxKey(t *testing.T) {
	for _, k := range [][]byte{nil, []byte("i/"), []byte("i/12345678x"), []byte("x/12345678"), inboxKey(0)} {
		if _, err := parseInboxKey(k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v", k, err)
		}
	}
	if seq, err := parseInboxKey(inboxKey(77)); err != nil || seq != 77 {
		t.Fatal(seq, err)
	}
}

func FuzzDecodeInboxEntry(f *testing.F) {
	for i := range 4 {
		e := InboxEntry{Seq: uint64(i + 1), Received: time.UnixMilli(int64(i) * 1e9).UTC(), Delivery: delivery(i)}
		b, err := EncodeInboxEntry(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeInboxEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		b2, err := EncodeInboxEntry(&e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("not canonical:\n%x\n%x", b, b2)
		}
		e2, err := DecodeInboxEntry(b2)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseInboxKey(f *testing.F) {
	f.Add(inboxKey(1))
	f.Add([]byte("i/"))
	f.Fuzz(func(t *testing.T, k []byte) {
		seq, err := parseInboxKey(k)
		if err != nil {
			return
		}
		if !bytes.Equal(inboxKey(seq), k) {
			t.Fatalf("%x -> %d", k, seq)
		}
	})
}

// bigReady has more than one transaction's worth: n custody records of
// 1.4 KB and m deliveries with their delivered records.
func bigReady(n, m, base int) *routing.Ready {
	rd := &routing.Ready{}
	for i := range n {
		rd.Persist = append(rd.Persist, routing.Record{Key: fmt.Sprintf("c/%06d", base+i), Value: make([]byte, 1400)})
	}
	for i := range m {
		d := delivery(base + i)
		d.Body = make([]byte, 20_000)
		rd.Deliveries = append(rd.Deliveries, d)
		// Delivered records listed in reverse, away from their deliveries.
		rd.Persist = append([]routing.Record{{Key: "d/" + idHex(d), Value: []byte{0, 0, 0, 9}}}, rd.Persist...)
	}
	return rd
}

// checkDeliveredPairs checks that every inbox entry has its delivered
// record and the other way round.
func checkDeliveredPairs(t *testing.T, recs []routing.Record, inbox []InboxEntry) {
	t.Helper()
	d := map[string]bool{}
	for _, r := range recs {
		if r.Key[:2] == "d/" {
			d[r.Key] = true
		}
	}
	for _, e := range inbox {
		k := "d/" + idHex(e.Delivery)
		if !d[k] {
			t.Fatalf("inbox entry %d without its delivered record", e.Seq)
		}
		delete(d, k)
	}
	if len(d) != 0 {
		t.Fatalf("%d delivered records without inbox entries", len(d))
	}
}

func TestApplySplit(t *testing.T) {
	s := openT(t, t.TempDir())
	fail := false
	s.cfg.beforeCommit = func() error {
		if fail {
			return errors.New("injected failure")
		}
		return nil
	}
	rd := bigReady(2000, 150, 0)
	rd.Deletes = []string{"c/000000"}
	txns0 := s.wal.applyTxns.Load()
	seqs, err := s.Apply(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 150 || seqs[149] != 150 {
		t.Fatalf("seqs %v", seqs)
	}
	recs, inbox := state(t, s)
	if txns := s.wal.applyTxns.Load() - txns0; txns < 2 {
		t.Fatalf("a batch bigger than a transaction applied in %d transactions", txns)
	}
	if len(recs) != 1999+150 || len(inbox) != 150 || s.InboxLen() != 150 {
		t.Fatalf("%d records, %d entries", len(recs), len(inbox))
	}
	checkDeliveredPairs(t, recs, inbox)

	// A failure before the batch is logged leaves nothing of it, and the
	// sequence numbers it would have taken are taken by the next batch.
	fail = true
	if _, err := s.Apply(bigReady(2000, 300, 10_000)); err == nil {
		t.Fatal("no error")
	}
	fail = false
	recs2, inbox2 := state(t, s)
	if len(recs2) != len(recs) || len(inbox2) != len(inbox) || s.InboxLen() != len(inbox) {
		t.Fatalf("a refused batch left %d records, %d entries", len(recs2)-len(recs), len(inbox2)-len(inbox))
	}
	seqs, err = s.Apply(&routing.Ready{Deliveries: []routing.Delivery{delivery(99)}})
	if err != nil || seqs[0] != inbox[len(inbox)-1].Seq+1 {
		t.Fatalf("seqs %v err %v, last on disk %d", seqs, err, inbox[len(inbox)-1].Seq)
	}

	// Many small operations exceed badger's entry count before its size.
	var dels []string
	for i := range 30_000 {
		dels = append(dels, fmt.Sprintf("c/%06d", i))
	}
	if _, err := s.Apply(&routing.Ready{Deletes: dels}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(); st.Engine["c/"] != 0 {
		t.Fatalf("%d custody records left", st.Engine["c/"])
	}
}
