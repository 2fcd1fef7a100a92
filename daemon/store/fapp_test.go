package store

import (
	"errors"
	"testing"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// TestFAPPWriteAcksInOneTransaction: a FAPP write removes the inbox
// entries it names in the same transaction as its own records (that is
// how a FAPP message is processed exactly once), keys outside f/ are
// refused, and scans see only their prefix.
func TestFAPPWriteAcksInOneTransaction(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seqs, err := s.Apply(&routing.Ready{Deliveries: []routing.Delivery{{Type: protocol.TypeFAPP, Body: []byte("sealed")}, {Body: []byte("app")}}})
	if err != nil || s.InboxLen() != 2 {
		t.Fatalf("apply: %v %v, inbox %d", seqs, err, s.InboxLen())
	}
	if err := s.FAPPWrite(FAPPBatch{Put: map[string][]byte{"x/1": {1}}, Ack: seqs[:1]}); !errors.Is(err, ErrFAPPKey) {
		t.Errorf("a key outside f/: %v", err)
	}
	if s.InboxLen() != 2 {
		t.Errorf("a refused write acknowledged an entry")
	}
	if err := s.FAPPWrite(FAPPBatch{Put: map[string][]byte{"f/t/1": {1}, "f/t/2": {2}, "f/a/1": {3}}, Ack: []uint64{seqs[0], seqs[0], 999}}); err != nil {
		t.Fatal(err)
	}
	entries, _, err := s.Inbox(0, 10)
	if err != nil || len(entries) != 1 || string(entries[0].Body) != "app" || s.InboxLen() != 1 {
		t.Errorf("inbox after the FAPP write: %+v %v (len %d)", entries, err, s.InboxLen())
	}
	var keys []string
	if err := s.FAPPScan("f/t/", func(k string, v []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "f/t/1" || keys[1] != "f/t/2" {
		t.Errorf("scan f/t/: %v", keys)
	}
	if err := s.FAPPWrite(FAPPBatch{Delete: []string{"f/t/1"}}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.FAPPGet("f/t/1"); err != nil || v != nil {
		t.Errorf("deleted key: %v %v", v, err)
	}
	if v, err := s.FAPPGet("f/t/2"); err != nil || string(v) != "\x02" {
		t.Errorf("kept key: %v %v", v, err)
	}
}
