package daemon

import (
	"context"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/p2p"
)

// TestDHTLookupReachesANodeOutsideTheMesh: F publishes its address record
// on B (a DHT server) and restarts on the same port, knowing nobody (so it
// cannot rejoin the mesh through B); A, connected only to B, sends to F. No
// mesh path exists, so A's engine asks for a lookup; the node loop finds F's
// record in the DHT, dials F directly, reports the route once the meshd
// link is up, and the message is delivered with a receipt.
func TestDHTLookupReachesANodeOutsideTheMesh(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(mode string, cfg Config) (*Node, func()) {
		cfg.DHTMode = mode
		return startNode(t, cfg)
	}
	b, stopB := start("server", testConfig(t))
	defer stopB()
	a, stopA := start("client", testConfig(t))
	defer stopA()
	cfgF := testConfig(t)
	f, stopF := start("client", cfgF)

	// F publishes its record on B, then disconnects.
	if _, err := f.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.host.WaitDHTPeer(ctx, b.host.ID()); err != nil {
		t.Fatal(err)
	}
	if err := f.host.PublishRecord(ctx); err != nil {
		t.Fatal(err)
	}
	listen, _, _ := strings.Cut(f.host.Addrs()[0], "/p2p/")
	stopF()
	// F remembers B from its first run and would redial it at start (and
	// so rejoin the mesh through B, racing A's send): make it forget.
	forgetKnownPeers(t, cfgF.DataDir)
	cfgF.Listen = []string{listen}
	f, stopF = start("client", cfgF)
	defer stopF()
	evF, cancelF, _ := f.Subscribe(ctx)
	defer cancelF()

	// A knows only B.
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.host.WaitDHTPeer(ctx, b.host.ID()); err != nil {
		t.Fatal(err)
	}
	res, err := a.Send(ctx, rpcapi.SendParams{To: f.id.Address().String(), Text: "found you"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status == "routed" {
		t.Fatalf("A had a route to F before any lookup: %+v", res)
	}
	for {
		ev := waitKind(t, ctx, evF, rpcapi.EventMessage)
		if ev.Message.Text == "found you" {
			break
		}
	}
	for {
		if ev := waitKind(t, ctx, evA, rpcapi.EventDelivered); ev.ID == res.ID {
			break
		}
	}
	// The direct connection may be reported after the receipt (under the
	// race detector on a loaded machine): wait for its peer-up event.
	for {
		peers, err := a.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.Address == f.id.Address().String() {
				return
			}
		}
		select {
		case <-evA:
		case <-ctx.Done():
			t.Fatalf("A is not connected to F directly; peers %+v", peers)
		}
	}
}

// TestRecordNamingAnotherNodesPeer: an identity M signs an address record
// that names an honest node B's libp2p peer (B's host key is public). A
// looks M up and is linked to B: the engine must not get a route to M over
// B's link. Resolved means "a direct link to the destination" to the
// engine, which takes it as feasible and advertises it; before the fix A
// routed M's traffic to B as if B were M, and B, hearing A's advert, could
// route it back to A (a loop between two honest nodes, on M's say-so).
func TestRecordNamingAnotherNodesPeer(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := protocol.NewIdentity(mrand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	rec := &p2p.Record{Identity: m.Public(), Peer: b.host.ID()}
	if err := a.call(ctx, func() { a.lookupDone(m.Address(), rec, nil) }); err != nil {
		t.Fatal(err)
	}
	routes, err := a.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dest == m.Address().String() {
			t.Fatalf("A routes M's address over B's link: %+v", r)
		}
	}
}

// forgetKnownPeers deletes every peer the stopped node at dataDir remembers.
func forgetKnownPeers(t *testing.T, dataDir string) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ForgetKnownPeers(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}
