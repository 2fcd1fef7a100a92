package routing

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"
)

// The due heap holds what is live, not every schedule of every record
// ever kept. Messages taken in, sent (scheduled again) and acknowledged a
// moment later left two stale entries each until their retry time came up
// (RetryBase, 30 s): under a steady flow of 25,000 messages a second, over
// a million entries. Now it stays within twice the live records plus
// dueSlack, and still returns the live records in due order.
func TestCustodyDueHeapBounded(t *testing.T) {
	s := newCustodyStore(newCustodyQuota(Address{1}, quotaLimits{total: 1 << 40, reserve: 1 << 30, perNeighbour: 1 << 40,
		perSource: 1 << 40, perDest: 1 << 40, sealed: 1 << 40, sealedPerNeigh: 1 << 40}))
	t0 := time.Unix(1_800_000_000, 0)
	key := func(i int) envKey {
		var k envKey
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	const flow, kept = 50_000, 100
	for i := range flow {
		r := &custodyRec{key: key(i), id: MessageID(key(i)), dest: Address{2}, origin: true,
			expires: 2_000_000_000, nextTry: t0.Add(time.Duration(flow-i) * time.Millisecond)}
		if !s.add(r) {
			t.Fatal("add refused")
		}
		s.schedule(r) // sent: the retry time
		if i%(flow/kept) != 0 {
			s.remove(r.key) // acknowledged
		}
		if max := 2*(len(s.recs)+1) + dueSlack; len(s.due) > max { // +1: the record just removed
			t.Fatalf("after %d messages (%d live): %d heap entries, bound %d", i+1, len(s.recs), len(s.due), max)
		}
	}
	var last time.Time
	n := 0
	for r := s.popDue(t0.Add(time.Hour)); r != nil; r = s.popDue(t0.Add(time.Hour)) {
		if r.nextTry.Before(last) {
			t.Fatalf("out of order: %v after %v", r.nextTry, last)
		}
		last = r.nextTry
		n++
	}
	if n != kept {
		t.Fatalf("%d records due, want %d", n, kept)
	}
}

// A custody record's key is "c/" and the envelope key in lower-case hex,
// the layout stores already hold, built in one allocation.
func TestCustodyKeyLayout(t *testing.T) {
	for i := range 64 {
		var k envKey
		for j := range k {
			k[j] = byte(i*37 + j*11)
		}
		if got, want := custodyKey(k), "c/"+hex.EncodeToString(k[:]); got != want {
			t.Fatalf("custodyKey(%x) = %q, want %q", k, got, want)
		}
	}
	var k envKey
	if n := testing.AllocsPerRun(100, func() { _ = custodyKey(k) }); n > 1 {
		t.Fatalf("custodyKey: %v allocations", n)
	}
}

// countingReader fills every read with its count of reads so far.
type countingReader struct{ n byte }

func (r *countingReader) Read(b []byte) (int, error) {
	r.n++
	for i := range b {
		b[i] = r.n
	}
	return len(b), nil
}

// A retry's jitter (drawn for every message sent) allocates nothing, and
// stays below its bound.
func TestJitterAllocs(t *testing.T) {
	e := &Engine{}
	e.cfg.Rand = &countingReader{}
	if n := testing.AllocsPerRun(100, func() {
		if j := e.jitter(time.Second); j < 0 || j >= time.Second {
			t.Fatalf("jitter %v", j)
		}
	}); n != 0 {
		t.Fatalf("jitter: %v allocations", n)
	}
}
