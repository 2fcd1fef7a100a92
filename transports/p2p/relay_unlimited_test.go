package p2p

import (
	"context"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// unlimitedRelay is a relay that announces no limit for its circuits
// (the limit is optional in circuit v2): the relayed connections it
// carries do not look limited to libp2p.
func unlimitedRelay(t *testing.T, ctx context.Context) host.Host {
	t.Helper()
	res := relayv2.DefaultResources()
	res.Limit = nil
	r, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ForceReachabilityPublic(), libp2p.EnableRelayService(relayv2.WithResources(res)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	sub, err := r.EventBus().Subscribe(new(event.EvtLocalProtocolsUpdated))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for !slices.Contains(r.Mux().Protocols(), proto.ProtoIDv2Hop) {
		select {
		case <-sub.Out():
		case <-ctx.Done():
			t.Fatal("the relay service never started")
		}
	}
	return r
}

// TestUnlimitedCircuitLinkMoves: a link over a relayed connection whose
// relay announced no limit still moves to a direct connection when one
// comes up: a relay must not keep a link (to delay, drop or watch its
// frames) by leaving out the limit.
func TestUnlimitedCircuitLinkMoves(t *testing.T) {
	ctx := testContext(t)
	r := unlimitedRelay(t, ctx)
	rAI := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}
	a := newTestHost(t, 82, nil)
	c := newTestHost(t, 83, nil)
	stopListening(t, a)
	stopListening(t, c)
	if err := c.Libp2p().Connect(ctx, rAI); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, c.Libp2p(), rAI); err != nil {
		t.Fatalf("reservation on the relay: %v", err)
	}
	circuit := peer.AddrInfo{ID: c.ID()}
	for _, ra := range rAI.Addrs {
		circuit.Addrs = append(circuit.Addrs, ra.Encapsulate(ma.StringCast("/p2p/"+r.ID().String()+"/p2p-circuit")))
	}
	if err := a.ConnectInfo(ctx, circuit); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	waitLinkWith[LinkUp](t, ctx, a, c.ID())
	if !linkLimited(t, a, c.ID()) {
		t.Error("a link over a relay's circuit is not taken as relayed")
	}
	if err := c.Libp2p().Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	if err := a.ConnectInfo(ctx, peer.AddrInfo{ID: c.ID(), Addrs: c.Libp2p().Network().ListenAddresses()}); err != nil {
		t.Fatal(err)
	}
	waitLinkWith[LinkDown](t, ctx, a, c.ID())
	waitLinkWith[LinkUp](t, ctx, a, c.ID())
	if linkLimited(t, a, c.ID()) {
		t.Fatal("a's link stayed on the relay's circuit although a direct connection is up")
	}
}
