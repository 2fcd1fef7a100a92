package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
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
	peers, err := a.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	direct := false
	for _, p := range peers {
		direct = direct || p.Address == f.id.Address().String()
	}
	if !direct {
		t.Errorf("A is not connected to F directly; peers %+v", peers)
	}
}
