package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"meshd.dev/meshd/routing"
)

// Backup and Load round-trip the whole store: engine records, the inbox
// and its counter.
func TestBackupLoad(t *testing.T) {
	s := openT(t, t.TempDir())
	rd := routing.Ready{Persist: []routing.Record{{Key: "c/01", Value: []byte("custody")}}, Deliveries: []routing.Delivery{delivery(1)}}
	if _, err := s.Apply(&rd); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if err := CheckBackupStream(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatalf("framing of a real backup: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Load(dir, bytes.NewReader(buf.Bytes()), quiet); err != nil {
		t.Fatal(err)
	}
	r := openT(t, dir)
	recs, err := r.EngineRecords()
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "custody" {
		t.Errorf("restored records %v, %v", recs, err)
	}
	st, _ := r.Stats()
	if st.Inbox != 1 || st.NextInboxSeq != 2 {
		t.Errorf("restored inbox %d, next seq %d", st.Inbox, st.NextInboxSeq)
	}
	if err := Load(dir, bytes.NewReader(buf.Bytes()), quiet); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("load into a store: %v", err)
	}
}

// FuzzCheckBackupStream: any stream is accepted only if its chunks tile it
// exactly; never a panic.
func FuzzCheckBackupStream(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckBackupStream(bytes.NewReader(data), int64(len(data)))
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}
