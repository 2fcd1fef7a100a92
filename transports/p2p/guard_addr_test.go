package p2p

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/protocol"
)

type connAddrs struct{ remote ma.Multiaddr }

func (c connAddrs) LocalMultiaddr() ma.Multiaddr  { return ma.StringCast("/ip4/127.0.0.1/tcp/7720") }
func (c connAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// addrGuard records what the gater asked of it.
type addrGuard struct {
	accepts, secured []netip.Addr
	allowPeer        int
}

func (g *addrGuard) AllowPeer(peer.ID) bool                        { g.allowPeer++; return true }
func (g *addrGuard) AllowLink(peer.ID, protocol.Address) error     { return nil }
func (g *addrGuard) Frame(peer.ID, protocol.Address, []byte) error { return nil }
func (g *addrGuard) HandshakeFailed(peer.ID, error) bool           { return true }
func (g *addrGuard) AllowAccept(ip netip.Addr) bool                { g.accepts = append(g.accepts, ip); return false }
func (g *addrGuard) AllowSecured(_ peer.ID, ip netip.Addr) bool {
	g.secured = append(g.secured, ip)
	return false
}

// TestGaterAddrGuard: the gater asks an AddrGuard about an inbound
// connection's IP before the security handshake and with the peer ID
// after it; a relayed connection is vetted by the relay's address before
// the handshake, but never counted against it after (AllowPeer, not
// AllowSecured: the relay serves many peers).
func TestGaterAddrGuard(t *testing.T) {
	g := &addrGuard{}
	gt := gater{g}
	direct := connAddrs{ma.StringCast("/ip4/192.0.2.9/tcp/4001")}
	mapped := connAddrs{ma.StringCast("/ip6/::ffff:192.0.2.9/tcp/4001")}
	relayed := connAddrs{ma.StringCast("/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")}
	if gt.InterceptAccept(direct) || gt.InterceptAccept(mapped) {
		t.Error("a connection the AddrGuard refused was accepted")
	}
	want := netip.MustParseAddr("192.0.2.9")
	if len(g.accepts) != 2 || g.accepts[0] != want || g.accepts[1] != want {
		t.Errorf("AllowAccept asked about %v, want %v twice", g.accepts, want)
	}
	// Any connected peer may present circuits (libp2p accepts a circuit
	// from any peer, reservation or not), each a new peer ID and a
	// security handshake: they count against the rate of the relay's
	// address, as its own connections do.
	if gt.InterceptAccept(relayed) {
		t.Error("a relayed connection the AddrGuard refused by the relay's address was accepted")
	}
	if relay := netip.MustParseAddr("192.0.2.1"); len(g.accepts) != 3 || g.accepts[2] != relay {
		t.Errorf("AllowAccept asked about %v for a relayed connection, want the relay's %v", g.accepts[2:], relay)
	}
	if gt.InterceptSecured(network.DirInbound, "p", direct) || len(g.secured) != 1 || g.secured[0] != want {
		t.Errorf("inbound secured: AllowSecured asked about %v, want %v (and refused)", g.secured, want)
	}
	if !gt.InterceptSecured(network.DirOutbound, "p", direct) || !gt.InterceptSecured(network.DirInbound, "p", relayed) || g.allowPeer != 2 {
		t.Errorf("outbound and relayed connections: AllowPeer called %d times, want 2", g.allowPeer)
	}
}
