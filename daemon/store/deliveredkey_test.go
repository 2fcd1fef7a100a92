package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/routing"
)

// TestUnitsDeliveredRecordNamed: a delivery lands with the record its
// Delivery.Record names (the engine keys delivered records on their order),
// not with a record under its envelope key in hex (the older form, which
// the store matches only when Record is empty).
func TestUnitsDeliveredRecordNamed(t *testing.T) {
	s := openT(t, t.TempDir())
	rd := &routing.Ready{}
	for i := range 3 {
		d := delivery(i)
		d.Key[0] = byte(i + 1)
		d.Record = fmt.Sprintf("d/%016x", 7+i)
		rd.Deliveries = append(rd.Deliveries, d)
	}
	// Records in another order, and one under the first's envelope key.
	old := "d/" + fmt.Sprintf("%x", rd.Deliveries[0].Key[:])
	rd.Persist = []routing.Record{{Key: rd.Deliveries[2].Record, Value: []byte{2}}, {Key: old, Value: []byte{9}},
		{Key: rd.Deliveries[0].Record, Value: []byte{0}}, {Key: rd.Deliveries[1].Record, Value: []byte{1}}}
	units, seqs, err := s.units(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 4 || len(seqs) != 3 {
		t.Fatalf("%d units, %d seqs; want 4, 3", len(units), len(seqs))
	}
	for i := range 3 {
		u := units[i]
		if len(u) != 2 || !bytes.Equal(u[0].key, inboxKey(seqs[i])) || !bytes.Equal(u[1].key, engineKey(rd.Deliveries[i].Record)) ||
			!bytes.Equal(u[1].value, []byte{byte(i)}) {
			t.Fatalf("unit %d: %+v", i, u)
		}
	}
	if u := units[3]; len(u) != 1 || !bytes.Equal(u[0].key, engineKey(old)) {
		t.Fatalf("unit 3: %+v, want the record under the envelope key alone", u)
	}
}

// setVersion writes the store's format version byte in badger directly,
// as another meshd would have left it.
func setVersion(t *testing.T, dir string, v []byte) {
	t.Helper()
	c := config{memTableSize: 8 << 20, logger: quietLogger}
	db, err := openBadger(dir, &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyVersion), v) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFormatVersionUpgrade: a version 1 store opens and is version 2
// afterwards (so that a meshd that reads only version 1, which would skip
// delivered records keyed on their order as damaged, refuses it); a version
// this meshd does not know is refused.
func TestFormatVersionUpgrade(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir).Close()
	setVersion(t, dir, []byte{1})
	s := openT(t, dir)
	var got []byte
	if err := s.db.View(func(txn *badger.Txn) (err error) { got, err = getValue(txn, keyVersion); return err }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{2}) {
		t.Fatalf("version %x after opening a version 1 store, want 02", got)
	}
	s.Close()
	for _, v := range [][]byte{{0}, {3}, {2, 0}} {
		setVersion(t, dir, v)
		if s, err := Open(dir, quiet); !errors.Is(err, ErrVersion) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("version %x: Open: %v, want ErrVersion", v, err)
		}
	}
}
