package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
)

// lockProbe is a random source that notes whether the patient book's lock
// is held while a request is made (its identity, its ID, its stamp, its
// seal: the stamp between the reads).
type lockProbe struct {
	f      *fappNode
	locked bool
}

func (p *lockProbe) Read(b []byte) (int, error) {
	if p.f.patMu.TryLock() {
		p.f.patMu.Unlock()
	} else {
		p.locked = true
	}
	return rand.Read(b)
}

// TestFAPPReserveMintsOutsideTheBookLock: fapp.reserve with stamp_bits
// up to 28 mints for tens of seconds (minutes on a phone). The request was
// made, stamp included, under patMu, which every patient message and the
// minute's sweep take while holding mu: the node's FAPP side stood still
// for the whole mint. Now the request is made outside the lock and only
// recorded under it.
func TestFAPPReserveMintsOutsideTheBookLock(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	n := openFAPPNode(t, is, clk)
	f := n.fapp
	now := clk.Now()
	id := mustIdentity(t)
	announce, profile := foreignOffer(t, id, is, now, "10115")
	f.onRegionFrame(10, announce, now)
	f.onRegionFrame(10, profile, now)
	probe := &lockProbe{f: f}
	old := randReader
	randReader = probe
	defer func() { randReader = old }()
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(id.Compact()), Slot: 1}
	// What fapp.reserve does before it hands the message to the loop.
	if _, err := f.reserve(context.Background(), ref, time.Time{}, fapp.RequestOptions{}, now); err != nil {
		t.Fatal(err)
	}
	if probe.locked {
		t.Error("the request (and its stamp) was made under the patient book's lock")
	}
}
