package p2p

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"meshd.dev/meshd/protocol"
)

// Guard vets who may link and what comes in, before anything reaches the
// Events channel all links share: the daemon implements it with its
// allow and deny lists, per-peer rate limits and cool-down list. Its
// methods are called from many goroutines at once.
type Guard interface {
	// AllowPeer reports whether p may connect or open a link stream at
	// all (deny list, cool-down). It runs before any link handshake.
	AllowPeer(p peer.ID) bool
	// AllowLink reports whether p, whose hello proved the mesh address
	// a, may have a link; an error refuses it.
	AllowLink(p peer.ID, a protocol.Address) error
	// Frame vets one frame read from p's link before it is queued. It
	// may wait (pacing a peer over its rate: the link reads nothing
	// meanwhile). An error wrapping ErrDropFrame drops that frame; any
	// other error ends the link and closes p's connections.
	Frame(p peer.ID, a protocol.Address, frame []byte) error
	// HandshakeFailed reports a link handshake p failed by breaking the
	// protocol; it reports whether to log it (the guard logs repeat
	// offenders once per interval itself).
	HandshakeFailed(p peer.ID, err error) bool
}

// ErrDropFrame, wrapped in an error from Guard.Frame, drops that one
// frame and keeps the link.
var ErrDropFrame = errors.New("p2p: frame dropped by the guard")

// AddrGuard is what a Guard may add to vet inbound connections by the
// remote IP address before the security handshake: a peer ID is known
// only after that handshake (an X25519 exchange and an Ed25519 check,
// the most expensive step of a connection), and minting a new one is
// free, so a flooder refused by its peer ID alone still costs a
// handshake per attempt.
type AddrGuard interface {
	// AllowAccept reports whether an inbound connection from ip may go on
	// to the security handshake.
	AllowAccept(ip netip.Addr) bool
	// AllowSecured replaces AllowPeer for an inbound connection once the
	// handshake named its peer: it tells the guard where p connects from
	// (a peer refused here, or cut off later, counts against ip).
	AllowSecured(p peer.ID, ip netip.Addr) bool
}

// gater refuses connections of peers the Guard does not allow, so a
// cooled-down or denied peer costs no stream and no link handshake; with
// an AddrGuard, an address it refuses costs no security handshake either.
type gater struct{ g Guard }

func (g gater) InterceptPeerDial(p peer.ID) bool             { return g.g.AllowPeer(p) }
func (g gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptUpgraded vets the peer of every upgraded connection again. A
// relayed (circuit) connection is already vetted by InterceptSecured
// (go-libp2p's circuit transport upgrades it with the gater; remoteIP
// leaves it to AllowPeer); this second check keeps a denied or
// cooling-down peer out should a transport skip the handshake-time
// checks.
func (g gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.g.AllowPeer(c.RemotePeer()), 0
}

// InterceptAccept runs before the security handshake of an inbound
// connection: the only point where refusing one costs next to nothing.
// A relayed connection is vetted by the relay's address: libp2p accepts
// a circuit from any connected peer (no reservation needed), each with a
// peer ID of the sender's choosing, so one connection would otherwise
// bring handshakes at any pace past the rate and the cool-down.
func (g gater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	ag, ok := g.g.(AddrGuard)
	if !ok {
		return true
	}
	ip, ok := leadingIP(cm.RemoteMultiaddr())
	return !ok || ag.AllowAccept(ip)
}

func (g gater) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	if ag, ok := g.g.(AddrGuard); ok && dir == network.DirInbound {
		if ip, ok := remoteIP(cm); ok {
			return ag.AllowSecured(p, ip)
		}
	}
	return g.g.AllowPeer(p)
}

// remoteIP is the IP address an inbound connection comes from. A relayed
// connection has none of its own: the address is the relay's, which
// serves many peers, so what its peer does must never count against the
// relay.
func remoteIP(cm network.ConnMultiaddrs) (netip.Addr, bool) {
	raddr := cm.RemoteMultiaddr()
	if raddr == nil {
		return netip.Addr{}, false
	}
	if _, err := raddr.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return netip.Addr{}, false
	}
	return leadingIP(raddr)
}

// leadingIP is the IP address a multiaddr starts with (a relayed
// connection's is the relay's), IPv4-mapped addresses as IPv4.
func leadingIP(raddr ma.Multiaddr) (netip.Addr, bool) {
	if raddr == nil {
		return netip.Addr{}, false
	}
	ip, err := manet.ToIP(raddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// isQUIC reports whether a listen address needs a UDP transport (QUIC,
// WebTransport), which a private network (PSK) cannot use.
func isQUIC(addr string) bool {
	return strings.Contains(addr, "/quic") || strings.Contains(addr, "/webtransport")
}
