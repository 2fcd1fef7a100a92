package daemon

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// noLeaksFAPP is noLeaks for tests with a FAPP relay: joining every
// region's topic at once overflows gossipsub's announce queue, and its
// retries sleep in goroutines of their own that outlive the host by up to
// a second.
func noLeaksFAPP(t *testing.T) {
	ignore := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p-pubsub.(*PubSub).announceRetry")}
	t.Cleanup(func() { goleak.VerifyNone(t, ignore...) })
}

// testClock is the wall clock plus an offset a test moves forward (to
// cross FAPP's batching epochs without waiting for them). Nodes sharing
// one clock agree on channel frame freshness.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// startClocked starts a node on clk (no API server).
func startClocked(tb testing.TB, cfg Config, clk *testClock) (*Node, func()) {
	tb.Helper()
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	return n, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// linkNodes connects a to b and waits until both see the link.
func linkNodes(tb testing.TB, a, b *Node) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		tb.Fatal(err)
	}
	for _, ev := range []<-chan rpcapi.Event{evA, evB} {
		waitKind(tb, ctx, ev, rpcapi.EventPeerUp)
	}
}

// waitFAPP calls cond until it holds, re-checking whenever n's FAPP state
// changes, and fails at ctx's end.
func waitFAPP(tb testing.TB, ctx context.Context, n *Node, what string, cond func() bool) {
	tb.Helper()
	for !cond() {
		select {
		case <-n.fapp.changed:
		case <-time.After(500 * time.Millisecond):
			// Some conditions (a route, a gossip mesh) change outside
			// FAPP; look again.
		case <-ctx.Done():
			tb.Logf("fapp counters: %v", n.fapp.stats.snapshot())
			tb.Fatalf("%s: %v", what, ctx.Err())
		}
	}
}

// fappTestEpoch is the batching epoch of the tests' nodes.
const fappTestEpoch = time.Minute

func fappConfig(tb testing.TB, issuer *fapp.Issuer, regions ...string) Config {
	c := testConfig(tb)
	c.FAPP.Regions = regions
	c.FAPP.TrustedIssuers = []string{issuer.PublicKey().String()}
	c.FAPP.Epoch = Duration(fappTestEpoch)
	return c
}

func newIssuer(tb testing.TB) *fapp.Issuer {
	is, err := fapp.NewIssuer(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return is
}

// therapistSlots are the test therapist's offer: a consultation and a
// weekly therapy place in 10115 Berlin.
func therapistSlots(now time.Time) []rpcapi.FAPPSlot {
	day := now.Truncate(24 * time.Hour).Add(3 * 24 * time.Hour)
	return []rpcapi.FAPPSlot{
		{Terminart: "SPRECHSTUNDE", Verfahren: "VERHALTENSTHERAPIE", Start: day.Add(17 * time.Hour), Dauer: 25},
		{Terminart: "THERAPIEPLATZ_KZT", Verfahren: "VERHALTENSTHERAPIE", Start: day.Add(24*time.Hour + 18*time.Hour),
			Dauer: 50, Woechentlich: true, Bis: day.Add(24*time.Hour + 18*time.Hour + 20*7*24*time.Hour)},
	}
}

// becomeTherapist gives n a credential from issuer, a profile in 10115
// and the test slots, and moves the clock past the epoch so the announce
// is released.
func becomeTherapist(tb testing.TB, ctx context.Context, n *Node, issuer *fapp.Issuer, clk *testClock) rpcapi.FAPPOffer {
	tb.Helper()
	now := clk.Now().Truncate(time.Second)
	cred, err := issuer.Issue(fapp.Credential{Serial: 7, Therapist: n.id.Compact(), Berufsgruppe: fapp.PsychologischerPsychotherapeut,
		RegistryID: "LANR-123456789", ValidFrom: now.Add(-time.Hour), ValidTo: now.Add(365 * 24 * time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := cred.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	if st, err := n.FAPPCredentialImport(ctx, raw); err != nil || st.Status != rpcapi.FAPPCredValid {
		tb.Fatalf("credential import: %+v %v", st, err)
	}
	if _, err := n.FAPPProfileSet(ctx, rpcapi.FAPPProfile{Name: "Praxis Dr. Beispiel", PLZ: "10115",
		Verfahren: []string{"VERHALTENSTHERAPIE"}, Kostentraeger: []string{"GKV", "SELBSTZAHLER"},
		Altersgruppen: []string{"ERWACHSENE"}, Sprachen: []string{"de", "tr"}, Schwerpunkte: []string{"Angst"}}); err != nil {
		tb.Fatal(err)
	}
	offer, err := n.FAPPPublish(ctx, rpcapi.FAPPPublishParams{Slots: therapistSlots(clk.Now())})
	if err != nil {
		tb.Fatal(err)
	}
	if !offer.Pending || len(offer.Slots) != 2 {
		tb.Fatalf("offer after publish: %+v", offer)
	}
	released := offer.Sequence
	clk.advance(fappTestEpoch)
	n.fapp.poke()
	waitFAPP(tb, ctx, n, "own announce released", func() bool {
		o, _ := n.FAPPSlots(ctx)
		offer = o
		return o.Sequence > released
	})
	return offer
}

func vtGKV(prefix string) rpcapi.FAPPQueryParams {
	return rpcapi.FAPPQueryParams{PLZPrefix: prefix, Verfahren: []string{"VERHALTENSTHERAPIE"}, Kostentraeger: []string{"GKV"}}
}

// TestFAPPAnnounceReachesFollowerTwoHops: a therapist's announce crosses a
// relay to a patient node two hops away that follows region 10; the
// patient finds the slot by Verfahren, Kostentraeger and PLZ prefix from
// its own index, and a filter that does not match finds nothing.
func TestFAPPAnnounceReachesFollowerTwoHops(t *testing.T) {
	noLeaksFAPP(t)
	clk := &testClock{}
	is := newIssuer(t)
	relayCfg := fappConfig(t, is)
	relayCfg.FAPP.Relay = true
	th, stopT := startClocked(t, fappConfig(t, is), clk)
	defer stopT()
	relay, stopR := startClocked(t, relayCfg, clk)
	defer stopR()
	pat, stopP := startClocked(t, fappConfig(t, is, "10"), clk)
	defer stopP()
	linkNodes(t, th, relay)
	linkNodes(t, pat, relay)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Gossip forwards along its mesh, which forms a heartbeat after the
	// subscriptions are known (transports/README.md).
	waitFAPP(t, ctx, relay, "gossip mesh", func() bool { return relay.host.ChannelMeshPeers(regionKey("10").ID()) >= 1 })
	becomeTherapist(t, ctx, th, is, clk)

	var res rpcapi.FAPPQueryResult
	waitFAPP(t, ctx, pat, "the announce and profile reach the patient node", func() bool {
		var err error
		res, err = pat.FAPPQuery(ctx, vtGKV("101"))
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Matches) == 2 && res.Matches[0].Name != ""
	})
	m := res.Matches[0]
	if res.Source != "local" || !res.Complete || !m.Zertifiziert || m.Name != "Praxis Dr. Beispiel" ||
		m.Berufsgruppe != "PSYCHOLOGISCHER_PSYCHOTHERAPEUT" || m.Slot.Terminart != "SPRECHSTUNDE" || m.PLZ != "10115" {
		t.Errorf("match %+v of %+v", m, res)
	}
	for _, q := range []rpcapi.FAPPQueryParams{
		{PLZPrefix: "10", Kostentraeger: []string{"PKV"}},
		{PLZPrefix: "10", Verfahren: []string{"ANALYTISCH"}},
		{PLZPrefix: "104"},
		{PLZPrefix: "10", Terminart: []string{"THERAPIEPLATZ_KZT"}, Zeitfenster: []string{"mo-fr 08:00-12:00"}},
	} {
		r, err := pat.FAPPQuery(ctx, q)
		if err != nil || len(r.Matches) != 0 {
			t.Errorf("query %+v: %d matches, %v", q, len(r.Matches), err)
		}
	}
	r, err := pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"THERAPIEPLATZ_KZT"}, Sprachen: []string{"tr"}})
	if err != nil || len(r.Matches) != 1 || !r.Matches[0].Slot.Woechentlich {
		t.Errorf("weekly place in Turkish: %+v %v", r, err)
	}
}
