package store

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"meshd.dev/meshd/routing"
)

// TestOpenEmptyMemtableLog: a power cut can leave one of badger's memtable
// logs with its directory entry synced but not its size (the store syncs
// the directory when badger switches memtables, and badger may create the
// next log meanwhile): a file of 0 bytes. badger cannot open a directory
// holding one ("while opening fid: 4 err: Create a new file", found by
// TestPowerLossMemtableRotation under load); the store removes it (it holds
// nothing) and opens with everything it had.
func TestOpenEmptyMemtableLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if _, err := s.Apply(&routing.Ready{Persist: []routing.Record{{Key: "c/1", Value: []byte{1}}}, Deliveries: []routing.Delivery{delivery(1)}}); err != nil {
		t.Fatal(err)
	}
	recs1, inbox1 := state(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, fid := range []int{40, 41} {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.mem", fid)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openT(t, dir)
	recs2, inbox2 := state(t, s)
	if !reflect.DeepEqual(recs1, recs2) || !reflect.DeepEqual(inbox1, inbox2) {
		t.Fatal("state changed across the reopen")
	}
	for _, fid := range []int{40, 41} {
		if fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%05d.mem", fid))); err == nil && fi.Size() == 0 {
			t.Errorf("the empty memtable log %d is still there", fid)
		}
	}
}
