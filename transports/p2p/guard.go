package p2p

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

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
	// Frame vets one frame read from p's link before it is queued; an
	// error ends the link and closes p's connections.
	Frame(p peer.ID, a protocol.Address, frame []byte) error
	// HandshakeFailed reports a link handshake p failed by breaking the
	// protocol; it reports whether to log it (the guard logs repeat
	// offenders once per interval itself).
	HandshakeFailed(p peer.ID, err error) bool
}

// gater refuses connections of peers the Guard does not allow, so a
// cooled-down or denied peer costs no stream and no handshake.
type gater struct{ g Guard }

func (g gater) InterceptPeerDial(p peer.ID) bool                                { return g.g.AllowPeer(p) }
func (g gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool                    { return true }
func (g gater) InterceptAccept(network.ConnMultiaddrs) bool                     { return true }
func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.g.AllowPeer(p)
}

// isQUIC reports whether a listen address needs a UDP transport (QUIC,
// WebTransport), which a private network (PSK) cannot use.
func isQUIC(addr string) bool {
	return strings.Contains(addr, "/quic") || strings.Contains(addr, "/webtransport")
}
