package routing

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestReadyRecordsDisjoint checks that the last operation on a key wins and
// that Persist and Deletes never name the same key.
func TestReadyRecordsDisjoint(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, time.Unix(1_800_000_000, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Ready()
	e.persist("c/a", []byte{1})
	e.del("c/a") // written then released in one round: only the delete
	e.del("c/b")
	e.persist("c/b", []byte{2}) // released, then taken again: only the write
	e.persist("c/c", []byte{3})
	e.persist("c/c", []byte{4}) // rewritten: the last value
	rd := e.Ready()
	if !slices.Equal(rd.Deletes, []string{"c/a"}) {
		t.Fatalf("deletes %q", rd.Deletes)
	}
	if len(rd.Persist) != 2 || rd.Persist[0].Key != "c/b" || rd.Persist[0].Value[0] != 2 ||
		rd.Persist[1].Key != "c/c" || rd.Persist[1].Value[0] != 4 {
		t.Fatalf("persist %+v", rd.Persist)
	}
	if rd2 := e.Ready(); len(rd2.Persist)+len(rd2.Deletes) != 0 {
		t.Fatalf("records repeated in the next Ready: %+v", rd2)
	}
}

// TestAdvertRateDutyCycle checks the advert budget against a duty cycle.
func TestAdvertRateDutyCycle(t *testing.T) {
	id, _ := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, time.Unix(1_800_000_000, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		duty, want float64 // want in bytes per second at 8,000 bit/s
	}{
		{0, 0.02 * 1000},           // no duty cycle: 2 % of the bitrate
		{0.01, 0.25 * 0.01 * 1000}, // EU868 1 %: a quarter of the legal airtime
		{0.1, 0.02 * 1000},         // EU868 10 %: the 2 % share is tighter
	} {
		l := &link{info: LinkInfo{ID: 1, Kind: LinkLoRa, Bitrate: 8000, DutyCycle: tc.duty}}
		if got := e.advertRate(l); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("duty %v: %v B/s, want %v", tc.duty, got, tc.want)
		}
	}
	if err := e.Step(time.Unix(1_800_000_000, 0), LinkUp{Link: LinkInfo{ID: 2, Kind: LinkLoRa, DutyCycle: 1.5}}); err == nil {
		t.Error("duty cycle 1.5 accepted")
	}
}

// TestAdvertRateFollowsBudget: adverts on a duty-cycled link slow down in
// proportion to the share of the hour's airtime left, so the rest goes to
// data.
func TestAdvertRateFollowsBudget(t *testing.T) {
	id, _ := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	now := time.Unix(1_800_000_000, 0)
	e, err := New(Config{Identity: id, Rand: rand.NewChaCha8([32]byte{2})}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Step(now, LinkUp{Link: LinkInfo{ID: 1, Kind: LinkLoRa, Bitrate: 8000, DutyCycle: 0.01}}); err != nil {
		t.Fatal(err)
	}
	l := e.links[1]
	full := e.advertRate(l)
	for _, rem := range []float64{1, 0.5, 0} {
		if err := e.Step(now, LinkBudget{Link: 1, Remaining: rem}); err != nil {
			t.Fatal(err)
		}
		if got, want := e.advertRate(l), full*rem; math.Abs(got-want) > 1e-9 {
			t.Errorf("remaining %v: %v B/s, want %v", rem, got, want)
		}
	}
}
