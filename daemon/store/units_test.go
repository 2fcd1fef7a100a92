package store

import (
	"bytes"
	"encoding/hex"
	"testing"

	"meshd.dev/meshd/routing"
)

// units cuts its ops and keys from shared storage: each key must be the
// one inboxKey or engineKey gives, each delivery must carry its delivered
// record, and no unit or key may reach into the next one's storage.
func TestUnitsSharedStorage(t *testing.T) {
	s := openT(t, t.TempDir())
	rd := &routing.Ready{}
	for i := range 3 {
		d := delivery(i)
		d.Key[0] = byte(i + 1)
		rd.Deliveries = append(rd.Deliveries, d)
		rd.Persist = append(rd.Persist, routing.Record{Key: "d/" + hex.EncodeToString(d.Key[:]), Value: []byte{byte(i)}})
	}
	rd.Persist = append(rd.Persist, routing.Record{Key: "c/x", Value: []byte("custody")})
	rd.Deletes = []string{"c/old", "s/y"}
	units, seqs, err := s.units(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 6 || len(seqs) != 3 {
		t.Fatalf("%d units, %d seqs; want 6, 3", len(units), len(seqs))
	}
	for i := range 3 {
		u := units[i]
		if len(u) != 2 || !bytes.Equal(u[0].key, inboxKey(seqs[i])) || !bytes.Equal(u[1].key, engineKey(rd.Persist[i].Key)) {
			t.Fatalf("unit %d: %+v", i, u)
		}
	}
	want := []string{"e/c/x", "e/c/old", "e/s/y"}
	for i, w := range want {
		u := units[3+i]
		if len(u) != 1 || string(u[0].key) != w || u[0].del != (i > 0) {
			t.Fatalf("unit %d: %+v, want key %s", 3+i, u, w)
		}
	}
	for i, u := range units {
		if cap(u) != len(u) {
			t.Errorf("unit %d has room beyond its ops (cap %d, len %d)", i, cap(u), len(u))
		}
		for _, o := range u {
			if cap(o.key) != len(o.key) {
				t.Errorf("key %q has room beyond its end", o.key)
			}
		}
	}
}
