package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
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

// movableClock is a test's clock: testClock (wall time moves it too) or
// frozenClock (only the test moves it).
type movableClock interface {
	Now() time.Time
	advance(d time.Duration)
}

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

// toEpochStart advances clk to 100 ms after n's next release boundary
// (its place in the epoch, fapp.EpochOffset), leaving a test on wall time
// that must not see a boundary pass almost a whole epoch of it.
func toEpochStart(clk movableClock, n *Node) {
	off := fapp.EpochOffset(fapp.TherapistKeyOf(n.id.Compact()), fappTestEpoch)
	into := (time.Duration(clk.Now().UnixNano()) - off) % fappTestEpoch
	if into < 0 {
		into += fappTestEpoch
	}
	clk.advance(fappTestEpoch - into + 100*time.Millisecond)
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
func becomeTherapist(tb testing.TB, ctx context.Context, n *Node, issuer *fapp.Issuer, clk movableClock) rpcapi.FAPPOffer {
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
	// Released at once, then repeated at the boundary the clock passed:
	// wait for both, so that nothing is due when the caller goes on.
	waitFAPP(tb, ctx, n, "own announce released", func() bool {
		o, repeat := offerNow(n)
		offer = o
		return o.Sequence > released && !repeat
	})
	return offer
}

// offerNow returns n's offer (as FAPPSlots gives it) and whether its
// publisher has an early announce to repeat, read under one hold of the
// lock: read apart, a release by the ticker in between pairs the offer
// before it with the state after it (no repeat due), and a caller goes on
// with a stale offer while a newer announce is already out.
func offerNow(n *Node) (rpcapi.FAPPOffer, bool) {
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offerLocked(n.now()), f.pub.Repeating()
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
	waitFAPP(t, ctx, relay, "gossip mesh", func() bool { return relay.host.ChannelMeshPeers(regionKey(10).ID()) >= 1 })
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

// fappTrio starts a therapist, a FAPP relay and a patient node in a line
// (therapist - relay - patient); the patient follows patientRegions.
type fappTrio struct {
	clk             *testClock
	is              *fapp.Issuer
	th, relay, pat  *Node
	thCfg, patCfg   Config
	stopTh, stopPat func()
	thLog, patLog   *logBuffer
	stopRelay       func()
}

func newTrio(t *testing.T, patientRegions ...string) *fappTrio {
	tr := &fappTrio{clk: &testClock{}, is: newIssuer(t), thLog: &logBuffer{}, patLog: &logBuffer{}}
	tr.thCfg, tr.patCfg = fappConfig(t, tr.is), fappConfig(t, tr.is, patientRegions...)
	relayCfg := fappConfig(t, tr.is)
	relayCfg.FAPP.Relay = true
	tr.th, tr.stopTh = tr.start(t, tr.thCfg, tr.thLog)
	tr.relay, tr.stopRelay = startClocked(t, relayCfg, tr.clk)
	tr.pat, tr.stopPat = tr.start(t, tr.patCfg, tr.patLog)
	linkNodes(t, tr.th, tr.relay)
	linkNodes(t, tr.pat, tr.relay)
	t.Cleanup(func() {
		tr.stopPat()
		tr.stopTh()
		tr.stopRelay()
	})
	return tr
}

// start starts a node on the trio's clock that logs everything, debug
// included, into log.
func (tr *fappTrio) start(t *testing.T, cfg Config, log *logBuffer) (*Node, func()) {
	n, err := Open(context.Background(), cfg, Options{Now: tr.clk.Now, Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
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
			t.Error(err)
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
}

func waitMesh(t *testing.T, ctx context.Context, n *Node, key protocol.ChannelKey) {
	t.Helper()
	waitFAPP(t, ctx, n, "gossip mesh", func() bool { return n.host.ChannelMeshPeers(key.ID()) >= 1 })
}

// TestFAPPRemoteQueryViaRelay: a node that does not follow region 10 asks
// the relays; the relay answers from its index, sealed to the query's
// ephemeral key, and the node finds the slot with its therapist's name.
// The query names no node: it carries a fresh ID and key only.
func TestFAPPRemoteQueryViaRelay(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "20")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	offer := becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	k := fapp.TherapistKeyOf(tr.th.id.Compact())
	// The first announce (FAPPProfileSet's, released at once) has no
	// slots: a relay holding only it answers the query with nothing that
	// matches. Wait for an announce with the slots.
	waitFAPP(t, ctx, tr.relay, "the relay indexes the announce with the slots", func() bool {
		seq, slots, prof := relayHolds(tr.relay, k)
		return seq > 0 && slots == len(offer.Slots) && prof
	})
	waitMesh(t, ctx, tr.pat, queriesKey())
	waitMesh(t, ctx, tr.relay, queriesKey())

	res, err := tr.pat.FAPPQuery(ctx, vtGKV("10"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != "relays" || !res.Complete || len(res.Matches) != 2 || res.Matches[0].Name != "Praxis Dr. Beispiel" || !res.Matches[0].Zertifiziert {
		seq, slots, prof := relayHolds(tr.relay, k)
		t.Fatalf("remote query: %+v (the relay holds sequence %d with %d slots, profile %v; the therapist released %d; asker counters %v)",
			res, seq, slots, prof, offer.Sequence, tr.pat.fapp.stats.snapshot())
	}
	if got := tr.relay.fapp.stats.snapshot()["queries_answered"]; got != 1 {
		t.Errorf("relay answered %d queries", got)
	}
	if got := tr.pat.fapp.stats.snapshot(); got["answer_items_refused"] != 0 || got["dropped_answer_malformed"] != 0 {
		t.Errorf("answers refused at the asker: %v", got)
	}
	// The patient node kept nothing of region 10 in its index: it does not
	// follow it.
	tr.pat.fapp.mu.Lock()
	n := tr.pat.fapp.idx.RegionLen(10)
	tr.pat.fapp.mu.Unlock()
	if n != 0 {
		t.Errorf("remote results went into the index: %d", n)
	}
	// A filter the relay's slots do not match: answered, empty.
	res, err = tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Kostentraeger: []string{"PKV"}})
	if err != nil || len(res.Matches) != 0 || !res.Complete {
		t.Errorf("remote query without matches: %+v %v", res, err)
	}
	// Following region 10 now fills the index from the relays: the
	// therapist published before the patient node subscribed, and gossip
	// does not replay.
	if _, err := tr.pat.FAPPFollow(ctx, []string{"10"}); err != nil {
		t.Fatal(err)
	}
	waitFAPP(t, ctx, tr.pat, "the new region is synced from the relay", func() bool {
		r, _ := tr.pat.FAPPQuery(ctx, vtGKV("10"))
		return r.Source == "local" && len(r.Matches) == 2 && r.Matches[0].Name != ""
	})
}

// relayHolds returns the sequence number and slot count of the announce
// of therapist k in n's index (0, 0 without one) and whether n has its
// profile.
func relayHolds(n *Node, k fapp.TherapistKey) (seq uint32, slots int, profile bool) {
	n.fapp.mu.Lock()
	defer n.fapp.mu.Unlock()
	if a := n.fapp.idx.Get(k); a != nil {
		seq, slots = a.Sequence, len(a.Slots)
	}
	return seq, slots, n.fapp.idx.Profile(k) != nil
}

// TestFAPPLocalQuerySendsNothing: a query within the followed regions is
// answered from the local index and no frame leaves the node: nothing is
// handed to links or gossip. The same node's query for a region it does
// not follow does publish (the measurement sees frames when there are any).
func TestFAPPLocalQuerySendsNothing(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is, "10")
	g := newFakeGossip()
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	n.gossip = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		n.Close()
	}()
	qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer qcancel()
	// A therapist's announce and profile in region 10 arrive.
	other := mustIdentity(t)
	announce, profile := foreignOffer(t, other, is, clk.Now(), "10115")
	n.chans.deliver(sealFor(t, regionKey(10), clk.Now(), string(profile), nil))
	n.chans.deliver(sealFor(t, regionKey(10), clk.Now(), string(announce), nil))
	waitFAPP(t, qctx, n, "the announce is indexed", func() bool {
		r, _ := n.FAPPQuery(qctx, vtGKV("10"))
		return len(r.Matches) == 1 && r.Matches[0].Name != ""
	})
	drainPublished(g)
	out := n.snap.Load().counters.FramesOut
	cmds := len(n.cmds)
	res, err := n.FAPPQuery(qctx, vtGKV("101"))
	if err != nil || res.Source != "local" || len(res.Matches) != 1 {
		t.Fatalf("local query: %+v %v", res, err)
	}
	// Give anything the query might have queued the chance to go out: a
	// remote query would have stepped a broadcast through the loop.
	if err := n.call(qctx, func() {}); err != nil {
		t.Fatal(err)
	}
	if err := n.call(qctx, func() {}); err != nil {
		t.Fatal(err)
	}
	select {
	case fr := <-g.published:
		t.Fatalf("a local query published a %d-byte frame", len(fr))
	default:
	}
	if got := n.snap.Load().counters.FramesOut; got != out || cmds != 0 {
		t.Errorf("frames out %d -> %d during a local query", out, got)
	}
	// Control: a region the node does not follow goes to the relays.
	rctx, rcancel := context.WithTimeout(qctx, 100*time.Millisecond)
	defer rcancel()
	if _, err := n.FAPPQuery(rctx, vtGKV("20")); err != nil {
		t.Fatal(err)
	}
	select {
	case fr := <-g.published:
		f, err := protocol.ParseChannelFrame(fr)
		if err != nil || f.Channel != queriesKey().ID() {
			t.Errorf("remote query published %v, %v", f, err)
		}
	case <-qctx.Done():
		t.Fatal("a remote query published nothing: the measurement is blind")
	}
}

func drainPublished(g *fakeGossip) {
	for {
		select {
		case <-g.published:
		default:
			return
		}
	}
}

// foreignOffer makes a region message pair of another therapist (id) with
// a credential from is: a signed announce with one free consultation, and
// its profile.
func foreignOffer(t *testing.T, id *protocol.Identity, is *fapp.Issuer, now time.Time, plz string) (announce, profile []byte) {
	t.Helper()
	now = now.Truncate(time.Minute)
	cred, err := is.Issue(fapp.Credential{Serial: 99, Therapist: id.Compact(), Berufsgruppe: fapp.Psychotherapeut, RegistryID: "R-1",
		ValidFrom: now.Add(-time.Hour), ValidTo: now.Add(100 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	p := &fapp.Profile{Identity: id.Public(), Sequence: 1, Issued: now, Name: "Praxis Fremd", Credential: *cred}
	rawP, err := fapp.SignProfile(id, p)
	if err != nil {
		t.Fatal(err)
	}
	code, err := fapp.ParsePLZ(plz)
	if err != nil {
		t.Fatal(err)
	}
	a := &fapp.SlotAnnounce{Profile: mustRef(p), Sequence: 1, Issued: now, Expires: now.Add(24 * time.Hour), PLZ: code,
		Verfahren: fapp.SetOf(fapp.Verhaltenstherapie), Kostentraeger: fapp.SetOf(fapp.GKV), Altersgruppen: fapp.SetOf(fapp.Erwachsene),
		Slots: []fapp.Slot{{ID: 1, Terminart: fapp.Sprechstunde, Verfahren: fapp.Verhaltenstherapie, Setting: fapp.Einzel,
			Modalitaet: fapp.Praxis, Voraussetzung: fapp.VoraussetzungKeine, Start: now.Add(48 * time.Hour), Dauer: 25, Status: fapp.SlotFrei}}}
	rawA, err := fapp.SignAnnounce(id, a, now)
	if err != nil {
		t.Fatal(err)
	}
	return fapp.AppendBroadcast(nil, regionAnnounce, rawA), fapp.AppendBroadcast(nil, regionProfile, rawP)
}

// waitReservation waits for a fapp-reservation event in state on ev.
func waitReservation(t *testing.T, ctx context.Context, ev <-chan rpcapi.Event, state string) *rpcapi.FAPPReservation {
	t.Helper()
	for {
		e := waitKind(t, ctx, ev, rpcapi.EventFAPPReservation)
		if e.FAPPReservation != nil && e.FAPPReservation.State == state {
			return e.FAPPReservation
		}
	}
}

// TestFAPPReservationThroughCustody is the whole pathway on the daemons:
// the patient node (two hops from the therapist) finds a slot and
// reserves it while the therapist's node is offline; the request waits in
// custody, longer than a stamp's time bucket; the therapist's node comes
// back, gets it, and the therapist confirms; the patient's node sees
// BESTAETIGT with the therapist's signature, the slot is re-announced as
// VERGEBEN without patient data, both sides keep the reservation across a
// restart, and neither node logged anything the patient gave.
func TestFAPPReservationThroughCustody(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	var match rpcapi.FAPPMatch
	waitFAPP(t, ctx, tr.pat, "the patient node finds the slot", func() bool {
		res, _ := tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}})
		if len(res.Matches) == 1 && res.Matches[0].Name != "" {
			match = res.Matches[0]
			return true
		}
		return false
	})

	// The therapist goes offline; the patient reserves.
	tr.stopTh()
	patEv, cancelPat, _ := tr.pat.Subscribe(ctx)
	defer cancelPat()
	const kontakt, ptv11 = "patient-kontakt@example.org", "PTV11-Empfehlung-Kurzzeit"
	res, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: match.Ref, Kontakt: kontakt, PTV11: ptv11})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != "ANGEFRAGT" || res.Role != "patient" || res.TherapistName != "Praxis Dr. Beispiel" {
		t.Fatalf("reserve: %+v", res)
	}
	waitReservation(t, ctx, patEv, "ANGEFRAGT")
	if _, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: match.Therapist + "/999"}); err == nil {
		t.Error("a reservation for a slot the therapist does not offer was accepted")
	}
	// Longer than a stamp's bucket (10 minutes) passes before the therapist
	// is back.
	tr.clk.advance(30 * time.Minute)

	th, stop := tr.start(t, tr.thCfg, tr.thLog)
	tr.th, tr.stopTh = th, stop
	thEv, cancelTh, _ := th.Subscribe(ctx)
	defer cancelTh()
	linkNodes(t, th, tr.relay)
	// Custody retries come with the engine's backoff: move the clock on
	// until the request is through.
	var got *rpcapi.FAPPReservation
	for got == nil {
		tr.clk.advance(time.Minute)
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		ev := waitKindOrNil(wctx, thEv, rpcapi.EventFAPPReservation)
		wcancel()
		if ev != nil {
			got = ev.FAPPReservation
		}
		if ctx.Err() != nil {
			t.Fatalf("the request never reached the therapist; counters %v", th.fapp.stats.snapshot())
		}
	}
	if got.State != "ANGEFRAGT" || got.Role != "therapist" || got.Kontakt != kontakt || got.PTV11 != ptv11 || got.ID != res.ID {
		t.Fatalf("therapist sees %+v", got)
	}
	conf, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: got.ID, Action: "confirm", Nachricht: "Bitte klingeln"})
	if err != nil || conf.State != "BESTAETIGT" {
		t.Fatalf("confirm: %+v %v", conf, err)
	}
	var done *rpcapi.FAPPReservation
	for done == nil {
		tr.clk.advance(time.Minute)
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		for {
			ev := waitKindOrNil(wctx, patEv, rpcapi.EventFAPPReservation)
			if ev == nil {
				break
			}
			if ev.FAPPReservation.State == "BESTAETIGT" {
				done = ev.FAPPReservation
				break
			}
		}
		wcancel()
		if ctx.Err() != nil {
			t.Fatal("the confirmation never reached the patient")
		}
	}
	if !done.Signed || done.Nachricht != "Bitte klingeln" || done.ID != res.ID {
		t.Errorf("patient sees %+v", done)
	}
	// A second confirmation is refused by the state machine.
	if _, err := th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: got.ID, Action: "decline"}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("decline after confirm: %v", err)
	}

	// The slot is re-announced as VERGEBEN at the next epoch.
	k := fapp.TherapistKeyOf(th.id.Compact())
	tr.clk.advance(fappTestEpoch)
	th.fapp.poke()
	waitFAPP(t, ctx, tr.pat, "VERGEBEN reaches the patient node", func() bool {
		tr.pat.fapp.mu.Lock()
		defer tr.pat.fapp.mu.Unlock()
		a := tr.pat.fapp.idx.Get(k)
		s, ok := findSlot(a, 1)
		return ok && s.Status == fapp.SlotVergeben
	})
	th.fapp.mu.Lock()
	raw := th.fapp.lastRaw
	th.fapp.mu.Unlock()
	for _, secret := range []string{kontakt, ptv11} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the announce carries patient data %q", secret)
		}
	}
	if res, _ := tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}}); len(res.Matches) != 0 {
		t.Errorf("the taken slot is still found: %+v", res.Matches)
	}

	// Both sides keep the reservation across a restart.
	tr.stopPat()
	pat, stopPat := tr.start(t, tr.patCfg, tr.patLog)
	tr.pat, tr.stopPat = pat, stopPat
	tr.stopTh()
	th, stop = tr.start(t, tr.thCfg, tr.thLog)
	tr.th, tr.stopTh = th, stop
	pr, _ := pat.FAPPReservations(ctx, rpcapi.FAPPReservationsParams{})
	trs, _ := th.FAPPReservations(ctx, rpcapi.FAPPReservationsParams{Role: "therapist"})
	if len(pr) != 1 || pr[0].State != "BESTAETIGT" || !pr[0].Signed || len(trs) != 1 || trs[0].State != "BESTAETIGT" || trs[0].Kontakt != kontakt {
		t.Errorf("after restart: patient %+v, therapist %+v", pr, trs)
	}
	if o, _ := th.FAPPSlots(ctx); len(o.Slots) != 2 || o.Slots[0].Status != "VERGEBEN" {
		t.Errorf("own slots after restart: %+v", o.Slots)
	}

	// Nothing the patient gave was logged, on either side.
	for _, l := range []*logBuffer{tr.thLog, tr.patLog} {
		for _, secret := range []string{kontakt, ptv11} {
			if strings.Contains(l.String(), secret) {
				t.Errorf("a log line holds patient data %q", secret)
			}
		}
	}
}

// TestFAPPStateSurvivesRestart: the followed regions, the index (announces
// and profiles of other therapists), the trusted issuers' revocation lists
// and the own offer come back after a restart, and the own announce
// sequence continues above the last one published (an index refuses a
// lower one as stale).
func TestFAPPStateSurvivesRestart(t *testing.T) {
	noLeaks(t)
	// A frozen clock: the restored offer is released at the node's next
	// boundary, and on wall time one could pass during the checks below
	// and release it before they look.
	clk := &frozenClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is)
	n, stop := startFrozen(t, cfg, clk)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r, err := n.FAPPFollow(ctx, []string{"20"}); err != nil || len(r.Followed) != 1 {
		t.Fatalf("follow: %+v %v", r, err)
	}
	announce, profile := foreignOffer(t, mustIdentity(t), is, clk.Now(), "20095")
	n.fapp.onRegionFrame(20, profile, clk.Now())
	n.fapp.onRegionFrame(20, announce, clk.Now())
	offer := becomeTherapist(t, ctx, n, is, clk)
	rv, _ := is.Revoke(3, clk.Now(), []uint64{1234})
	rraw, _ := rv.MarshalBinary()
	if _, err := n.FAPPRevocationImport(ctx, rraw); err != nil {
		t.Fatal(err)
	}
	stop()

	n, _ = startFrozen(t, cfg, clk)
	r, err := n.FAPPRegions(ctx)
	if err != nil || len(r.Followed) != 2 || r.Followed[0].Region != "10" || r.Followed[1].Region != "20" || r.Followed[1].Announces != 1 {
		t.Errorf("regions after restart: %+v %v", r, err)
	}
	res, err := n.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "20"})
	if err != nil || res.Source != "local" || len(res.Matches) != 1 || res.Matches[0].Name != "Praxis Fremd" || !res.Matches[0].Zertifiziert {
		t.Errorf("index after restart: %+v %v", res, err)
	}
	if iss, _ := n.FAPPIssuers(ctx); len(iss) != 1 || iss[0].RevocationSequence != 3 {
		t.Errorf("issuers after restart: %+v", iss)
	}
	if st, _ := n.FAPPCredentialStatus(ctx); st.Status != rpcapi.FAPPCredValid {
		t.Errorf("credential after restart: %+v", st)
	}
	if p, _ := n.FAPPProfileGet(ctx); p.Profile == nil || p.Profile.Name != "Praxis Dr. Beispiel" {
		t.Errorf("profile after restart: %+v", p)
	}
	// A tick: the restored offer is no edit, so nothing goes out before
	// the boundary (the clock stands still: none passes).
	got := tickOffer(t, ctx, n)
	if len(got.Slots) != 2 || got.Sequence != offer.Sequence || !got.Pending || !got.NextAnnounce.After(clk.Now()) {
		t.Errorf("offer after restart: %+v, before %+v", got, offer)
	}
	clk.advance(fappTestEpoch)
	n.fapp.poke()
	waitFAPP(t, ctx, n, "re-announce after the restart", func() bool {
		o, _ := n.FAPPSlots(ctx)
		return o.Sequence > offer.Sequence
	})
}

// TestFAPPHoldAndPatientCancel: the therapist holds a requested slot (the
// patient sees GEHALTEN and the slot's status is GEHALTEN in the offer),
// the patient cancels (the therapist sees STORNIERT_PATIENT and the slot is
// FREI again), and a second reservation of the same occurrence then goes
// through.
func TestFAPPHoldAndPatientCancel(t *testing.T) {
	noLeaksFAPP(t)
	tr := newTrio(t, "10")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitMesh(t, ctx, tr.relay, regionKey(10))
	becomeTherapist(t, ctx, tr.th, tr.is, tr.clk)
	var ref string
	waitFAPP(t, ctx, tr.pat, "the patient node finds the slot", func() bool {
		res, _ := tr.pat.FAPPQuery(ctx, rpcapi.FAPPQueryParams{PLZPrefix: "10", Terminart: []string{"SPRECHSTUNDE"}})
		if len(res.Matches) == 1 && res.Matches[0].Name != "" {
			ref = res.Matches[0].Ref
			return true
		}
		return false
	})
	thEv, cancelTh, _ := tr.th.Subscribe(ctx)
	defer cancelTh()
	patEv, cancelPat, _ := tr.pat.Subscribe(ctx)
	defer cancelPat()
	res, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref})
	if err != nil {
		t.Fatal(err)
	}
	got := waitReservation(t, ctx, thEv, "ANGEFRAGT")
	// The hold's status waits for the therapist's next boundary: on wall
	// time one may come between the hold and the look at the offer, which
	// then is no longer pending. Start the hold just after one.
	toEpochStart(tr.clk, tr.th)
	until := tr.clk.Now().Add(24 * time.Hour).Truncate(time.Second)
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: got.ID, Action: "hold", Until: until}); err != nil || r.State != "GEHALTEN" {
		t.Fatalf("hold: %+v %v", r, err)
	}
	if o, _ := tr.th.FAPPSlots(ctx); o.Slots[0].Status != "GEHALTEN" || !o.Pending {
		t.Errorf("offer after the hold: %+v", o)
	}
	if r := waitReservation(t, ctx, patEv, "GEHALTEN"); !r.Expires.Equal(until) {
		t.Errorf("patient sees the hold until %v, want %v", r.Expires, until)
	}
	if r, err := tr.pat.FAPPCancel(ctx, rpcapi.FAPPCancelParams{ID: res.ID}); err != nil || r.State != "STORNIERT_PATIENT" {
		t.Fatalf("cancel: %+v %v", r, err)
	}
	waitReservation(t, ctx, thEv, "STORNIERT_PATIENT")
	if o, _ := tr.th.FAPPSlots(ctx); o.Slots[0].Status != "FREI" {
		t.Errorf("offer after the cancel: %+v", o.Slots)
	}
	if _, err := tr.pat.FAPPCancel(ctx, rpcapi.FAPPCancelParams{ID: res.ID}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("a second cancel: %v", err)
	}
	res2, err := tr.pat.FAPPReserve(ctx, rpcapi.FAPPReserveParams{Slot: ref})
	if err != nil || res2.ID == res.ID {
		t.Fatalf("second reservation: %+v %v", res2, err)
	}
	got2 := waitReservation(t, ctx, thEv, "ANGEFRAGT")
	if got2.ID != res2.ID {
		t.Errorf("therapist got %s, want %s", got2.ID, res2.ID)
	}
	if r, err := tr.th.FAPPRespond(ctx, rpcapi.FAPPRespondParams{ID: got2.ID, Action: "decline", Nachricht: "leider nicht"}); err != nil || r.State != "ABGELEHNT" {
		t.Fatalf("decline: %+v %v", r, err)
	}
	if r := waitReservation(t, ctx, patEv, "ABGELEHNT"); r.Nachricht != "leider nicht" {
		t.Errorf("patient sees %+v", r)
	}
}
