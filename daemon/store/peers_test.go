package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestKnownPeersBoundedAndPersisted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1_700_000_000, 0)
	var peers []KnownPeer
	for i := range MaxKnownPeers + 3 {
		peers = append(peers, KnownPeer{ID: fmt.Sprintf("peer%03d", i), Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i)}, Seen: base.Add(time.Duration(i) * time.Second)})
	}
	if err := s.PutKnownPeers(peers); err != nil {
		t.Fatal(err)
	}
	// Refresh the oldest: it is seen now and must survive.
	if err := s.PutKnownPeers([]KnownPeer{{ID: "peer000", Addrs: []string{"/ip4/127.0.0.1/tcp/9"}, Seen: base.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.KnownPeers()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxKnownPeers {
		t.Fatalf("%d known peers, want %d", len(got), MaxKnownPeers)
	}
	if got[0].ID != "peer000" || got[0].Addrs[0] != "/ip4/127.0.0.1/tcp/9" {
		t.Fatalf("first %+v, want the refreshed peer000", got[0])
	}
	for _, p := range got {
		if p.ID == "peer001" || p.ID == "peer002" || p.ID == "peer003" {
			t.Fatalf("%s (seen longest ago) was kept", p.ID)
		}
	}
}
