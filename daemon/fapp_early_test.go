package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// frozenClock is a clock that moves only when the test sets it.
type frozenClock struct{ ns atomic.Int64 }

func (c *frozenClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *frozenClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *frozenClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// advance is add (movableClock).
func (c *frozenClock) advance(d time.Duration) { c.add(d) }

// startFrozen starts a node on clk; a clock not yet set is set to one
// second past the node's own epoch boundary: a change then waits almost a
// whole epoch for the next. stop stops the node (also at cleanup).
func startFrozen(t *testing.T, cfg Config, clk *frozenClock) (n *Node, stop func()) {
	t.Helper()
	unset := clk.ns.Load() == 0
	if unset {
		clk.set(time.Now())
	}
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if unset {
		off := fapp.EpochOffset(fapp.TherapistKeyOf(n.id.Compact()), fappTestEpoch)
		clk.set(time.Now().Truncate(fappTestEpoch).Add(off + time.Second))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		n.Close()
	}
	t.Cleanup(stop)
	return n, stop
}

// tickOffer runs one FAPP tick on n's loop and returns the offer.
func tickOffer(t *testing.T, ctx context.Context, n *Node) rpcapi.FAPPOffer {
	t.Helper()
	if err := n.call(ctx, n.fapp.tick); err != nil {
		t.Fatal(err)
	}
	o, err := n.FAPPSlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestFAPPOwnOfferReleasedAtOnce: a therapist's new offer, and a later
// profile edit, are announced at once (with the profile), not at the next
// epoch boundary: a patient who searches finds them within seconds. The
// clock does not move past a boundary.
func TestFAPPOwnOfferReleasedAtOnce(t *testing.T) {
	clk := &frozenClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is)
	n, stop := startFrozen(t, cfg, clk)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	boundary := clk.Now().Add(-time.Second)
	now := clk.Now()
	cred, err := is.Issue(fapp.Credential{Serial: 7, Therapist: n.id.Compact(), Berufsgruppe: fapp.PsychologischerPsychotherapeut,
		RegistryID: "LANR-123456789", ValidFrom: now.Add(-time.Hour), ValidTo: now.Add(365 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := cred.MarshalBinary()
	if _, err := n.FAPPCredentialImport(ctx, raw); err != nil {
		t.Fatal(err)
	}
	profile := rpcapi.FAPPProfile{Name: "Praxis Dr. Beispiel", PLZ: "10115", Verfahren: []string{"VERHALTENSTHERAPIE"},
		Kostentraeger: []string{"GKV"}, Altersgruppen: []string{"ERWACHSENE"}, Sprachen: []string{"de"}}
	if _, err := n.FAPPProfileSet(ctx, profile); err != nil {
		t.Fatal(err)
	}
	if o, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: therapistSlots(now)}); err != nil || !o.NextAnnounce.Equal(now) {
		t.Fatalf("publish: next announce %v (%v), want now (%v)", o.NextAnnounce, err, now)
	}
	o := tickOffer(t, ctx, n)
	if o.Sequence == 0 || o.Pending || len(o.Slots) != 2 {
		t.Fatalf("the new offer waits for the boundary: %+v", o)
	}
	a, err := fapp.ParseSlotAnnounce(n.fapp.lastRaw, clk.Now(), 0)
	if err != nil || !a.Issued.Equal(boundary) || len(a.Slots) != 2 {
		t.Fatalf("released announce %+v (%v), want 2 slots dated %v", a, err, boundary)
	}
	// An edit of the profile: the announce naming it, and the profile, go
	// out at once.
	clk.add(2 * time.Second)
	profile.Name = "Praxis Dr. Beispiel-Neu"
	info, err := n.FAPPProfileSet(ctx, profile)
	if err != nil {
		t.Fatal(err)
	}
	o2 := tickOffer(t, ctx, n)
	if o2.Sequence <= o.Sequence || o2.Pending {
		t.Fatalf("the profile edit waits for the boundary: %+v after %+v", o2, o)
	}
	n.fapp.mu.Lock()
	sent := n.fapp.profileSent
	n.fapp.mu.Unlock()
	if sent != info.Sequence {
		t.Fatalf("profile %d broadcast, want the edited %d", sent, info.Sequence)
	}

	// A restart is no edit: it releases nothing before the boundary (a
	// slot status changed before it would otherwise go out at once).
	stop()
	clk.add(time.Second)
	n, _ = startFrozen(t, cfg, clk)
	if o3 := tickOffer(t, ctx, n); o3.Sequence != o2.Sequence || !o3.NextAnnounce.Equal(boundary.Add(fappTestEpoch)) {
		t.Fatalf("after the restart: sequence %d (want %d), next announce %v (want the boundary %v)",
			o3.Sequence, o2.Sequence, o3.NextAnnounce, boundary.Add(fappTestEpoch))
	}
}
