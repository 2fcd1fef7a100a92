package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The apply-peers child refreshes one remembered peer over and over
// (PutKnownPeers, as each link-up does: a write outside the write-ahead
// log, synced through badger, syncNow), its record about 200 bytes, so in
// the value log; it prints "ack <n> <n>" once the record says seen = n.
// The report-peers child prints "batches <n+1> 0 1 ... n" for the record
// it finds (seen = n): a record that overwrote acknowledged ones must
// come back whole, or not replace them. A power cut that keeps the new
// record's value pointer (the memtable log) but not its value (the value
// log) leaves a record that reads as damaged, and the peer is forgotten.
const powerPeer = "12D3KooWpowerPeer"

func peerAt(n int) KnownPeer {
	return KnownPeer{ID: powerPeer, Seen: time.Unix(int64(n), 0),
		Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/%s", 4000+n%1000, strings.Repeat("x", 150))}}
}

func runApplyPeers(dir string) int {
	s, err := Open(dir, quiet)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	peers, err := s.KnownPeers()
	if err != nil {
		fmt.Println("peers:", err)
		return 1
	}
	next := 0
	if len(peers) > 0 {
		next = int(peers[0].Seen.Unix()) + 1
	}
	fmt.Println("ready")
	for n := next; ; n++ {
		if err := s.PutKnownPeers([]KnownPeer{peerAt(n)}); err != nil {
			fmt.Println("put:", err)
			return 1
		}
		fmt.Printf("ack %d %d\n", n, n)
	}
}

func runReportPeers(dir string) int {
	s, err := Open(dir, quiet)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer s.Close()
	peers, err := s.KnownPeers()
	if err != nil || len(peers) > 1 {
		return printBatches(nil, fmt.Errorf("known peers %v, %v", peers, err))
	}
	if len(peers) == 0 {
		return printBatches(nil, nil)
	}
	n := int(peers[0].Seen.Unix())
	if want := peerAt(n); peers[0].ID != want.ID || len(peers[0].Addrs) != 1 || peers[0].Addrs[0] != want.Addrs[0] {
		return printBatches(nil, fmt.Errorf("peer record %+v is not the one written", peers[0]))
	}
	seqs := make([]uint64, n+1)
	for i := range seqs {
		seqs[i] = uint64(i)
	}
	return printBatches(seqs, nil)
}

// TestPowerLossKnownPeers: power cuts while a remembered peer's record is
// rewritten: the peer is never forgotten, and its record is the last
// acknowledged one or the one after.
func TestPowerLossKnownPeers(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cuts := make([]int, 12)
	for i := range cuts {
		cuts[i] = 1 + rng.IntN(30)
	}
	total := powerRounds(t, "apply-peers", cuts)
	t.Logf("%d acknowledged peer records checked", total)
}
