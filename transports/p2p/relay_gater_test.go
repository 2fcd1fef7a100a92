package p2p

import (
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// connectedFrom counts the connections a host accepted from one peer.
type connectedFrom struct {
	network.NoopNotifiee
	p peer.ID
	n atomic.Int32
}

func (c *connectedFrom) Connected(_ network.Network, conn network.Conn) {
	if conn.RemotePeer() == c.p {
		c.n.Add(1)
	}
}

// TestGaterRefusesRelayedPeer: a peer the guard refuses (deny list,
// cool-down) that reaches a host through a relay's circuit gets no
// connection at all: no identify, ping, DHT or gossip stream, not only no
// link. The relay's own connection and the reservation stay.
func TestGaterRefusesRelayedPeer(t *testing.T) {
	ctx := testContext(t)
	g := &denyGuard{refused: make(chan struct{})}
	r := newTestHost(t, 81, func(c *Config) { c.Relay = true })
	waitProtocol(t, ctx, r, "/libp2p/circuit/relay/0.2.0/hop")
	rAI := peer.AddrInfo{ID: r.ID(), Addrs: r.Libp2p().Addrs()}
	a := newTestHost(t, 82, nil)
	c := newTestHost(t, 83, func(cfg *Config) { cfg.Guard = g })
	stopListening(t, a)
	stopListening(t, c)
	denied := a.ID()
	g.deny.Store(&denied)
	seen := &connectedFrom{p: denied}
	c.Libp2p().Network().Notify(seen)
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
	_ = a.Libp2p().Connect(ctx, circuit) // may report success: a finishes its handshake first
	sctx := network.WithAllowLimitedConn(network.WithNoDial(ctx, "test"), "test")
	if s, err := a.Libp2p().NewStream(sctx, c.ID(), ping.ID); err == nil {
		s.Close()
		t.Fatal("the denied peer opened a ping stream over the relayed connection")
	}
	select {
	case <-g.refused:
	case <-ctx.Done():
		t.Fatal("the guard was never asked about the relayed peer")
	}
	if n := seen.n.Load(); n != 0 {
		t.Fatalf("the host accepted %d relayed connections of the denied peer", n)
	}
	if c.Libp2p().Network().Connectedness(r.ID()) != network.Connected {
		t.Fatal("the host lost its connection to the relay")
	}
}
