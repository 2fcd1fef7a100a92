package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Meshd links over limited (relayed, circuit v2) connections.
//
// Two nodes behind NAT reach each other only through a relay's circuit: a
// connection that libp2p marks limited, because the relay ends it after
// RelayLimits.Duration or RelayLimits.Data bytes each way. A meshd link
// runs over such a connection when it is the only one, so that the two
// nodes are neighbours at once, while libp2p tries hole punching (DCUtR)
// for a direct connection. Three rules keep the relay a fallback:
//   - a link stream is opened on the best connection, and libp2p's best is
//     a direct one whenever there is one (network.WithAllowLimitedConn only
//     allows a limited connection, it does not prefer it);
//   - a link on a relayed connection moves to a direct one as soon as one
//     is up (upgrade: the opener opens the link again; the new stream
//     replaces the old one);
//   - a link stream arriving on a relayed connection never replaces a link
//     on a direct connection (errDirectLinkUp).
//
// When the relay ends the connection (its limit), the link goes down like
// any other and the redialer connects again: directly if it can, else
// through the circuit addresses the peer announced (dialRelayed).

// errDirectLinkUp refuses a link stream on a relayed connection while the
// peer's link runs on a direct one.
var errDirectLinkUp = errors.New("p2p: link stream on a relayed connection refused: the link runs on a direct one")

// Defaults of RelayLimits: a meshd link through the relay spends about
// 60 bytes a second each way on keepalive pings alone, so go-libp2p's
// 2 minutes and 128 KiB would cut every relayed link every 2 minutes
// and leave little for messages.
const (
	DefaultRelayDuration        = 10 * time.Minute
	DefaultRelayData            = 1 << 20
	DefaultRelayReservations    = 128
	DefaultRelayCircuitsPerPeer = 16
	// minRelayData is the least RelayLimits.Data: below it a relayed
	// link would not carry one link hello and a few frames.
	minRelayData = 64 << 10
	// minRelayDuration is the least RelayLimits.Duration.
	minRelayDuration = 30 * time.Second
)

// RelayLimits bound what the circuit relay service of relay mode gives to
// others. The zero value of each field is its default.
type RelayLimits struct {
	// Duration is how long a relayed connection lives before the relay
	// ends it (default DefaultRelayDuration).
	Duration time.Duration
	// Data is how many bytes the relay carries each way per relayed
	// connection before it ends it (default DefaultRelayData).
	Data int64
	// Reservations is how many peers may hold a slot (be reachable
	// through this relay) at once (default DefaultRelayReservations).
	Reservations int
	// CircuitsPerPeer is how many relayed connections to or from one peer
	// may be open at once (default DefaultRelayCircuitsPerPeer).
	CircuitsPerPeer int
}

// withDefaults fills in the defaults and checks the limits.
func (l RelayLimits) withDefaults() (RelayLimits, error) {
	if l.Duration == 0 {
		l.Duration = DefaultRelayDuration
	}
	if l.Data == 0 {
		l.Data = DefaultRelayData
	}
	if l.Reservations == 0 {
		l.Reservations = DefaultRelayReservations
	}
	if l.CircuitsPerPeer == 0 {
		l.CircuitsPerPeer = DefaultRelayCircuitsPerPeer
	}
	switch {
	case l.Duration < minRelayDuration:
		return l, fmt.Errorf("%w: relay duration %v is below %v", ErrConfig, l.Duration, minRelayDuration)
	case l.Data < minRelayData:
		return l, fmt.Errorf("%w: relay data limit %d bytes is below %d", ErrConfig, l.Data, minRelayData)
	case l.Reservations < 0 || l.CircuitsPerPeer < 0:
		return l, fmt.Errorf("%w: relay reservations %d and circuits per peer %d must be positive", ErrConfig, l.Reservations, l.CircuitsPerPeer)
	}
	return l, nil
}

// relayResources are the circuit relay v2 service limits in relay mode.
func relayResources(l RelayLimits) relayv2.Resources {
	return relayv2.Resources{
		Limit: &relayv2.RelayLimit{
			Duration: l.Duration,
			Data:     l.Data,
		},
		ReservationTTL:         time.Hour,
		MaxReservations:        l.Reservations,
		MaxCircuits:            l.CircuitsPerPeer,
		BufferSize:             2048,
		MaxReservationsPerPeer: 1,
		MaxReservationsPerIP:   8,
		MaxReservationsPerASN:  32,
	}
}

// reachabilityOpts are the libp2p options of Config.Reachability.
func reachabilityOpts(reach string, relay bool) ([]libp2p.Option, error) {
	switch reach {
	case "", "auto":
		return nil, nil
	case "private":
		if relay {
			return nil, fmt.Errorf("%w: relay mode is publicly reachable, not private", ErrConfig)
		}
		return []libp2p.Option{libp2p.ForceReachabilityPrivate()}, nil
	case "public":
		if relay {
			return nil, nil // relay mode forces it already
		}
		return []libp2p.Option{libp2p.ForceReachabilityPublic()}, nil
	}
	return nil, fmt.Errorf("%w: reachability %q: want auto, private or public", ErrConfig, reach)
}

// linkStreamCtx is the context to open a link stream with: over an open
// connection only, a relayed one allowed (libp2p still picks a direct
// connection when there is one).
func linkStreamCtx(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(network.WithNoDial(ctx, "meshd link"), "meshd link")
}

// limited reports whether l runs over a limited (relayed) connection.
func (l *link) limited() bool { return relayedConn(l.s.Conn()) }

// relayedConn reports whether c runs through a relay: limited, or over a
// circuit address, since the limit is optional in circuit v2 and a relay
// that leaves it out would otherwise pass for a direct connection (and
// keep the link: never moved, and replacing one on a direct connection).
func relayedConn(c network.Conn) bool {
	return c.Stat().Limited || isCircuit(c.RemoteMultiaddr())
}

// hasDirectConn reports whether a connection to p that is not limited is
// open.
func (h *Host) hasDirectConn(p peer.ID) bool {
	for _, c := range h.host.Network().ConnsToPeer(p) {
		if !relayedConn(c) {
			return true
		}
	}
	return false
}

// connected reports whether a connection to p is open, direct or relayed.
func (h *Host) connected(p peer.ID) bool {
	c := h.host.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// needsUpgrade reports whether l, a live link, runs over a relayed
// connection while a direct one to its peer is up (direct, computed by the
// caller outside h.mu).
func needsUpgrade(l *link, direct bool) bool { return direct && l.limited() }

// keepsDirect reports whether old, the peer's link, runs on a direct
// connection and s, a new link stream, on a relayed one: s must not
// replace old.
func keepsDirect(old *link, s network.Stream) bool {
	return !old.isClosed() && !old.limited() && relayedConn(s.Conn())
}

// directOverRelayed makes a Connect to a peer connected only through a
// relay dial the direct addresses ai names: libp2p's Connect would
// otherwise return the relayed connection at once.
func (h *Host) directOverRelayed(ctx context.Context, ai peer.AddrInfo) context.Context {
	if !h.connected(ai.ID) || h.hasDirectConn(ai.ID) {
		return ctx
	}
	for _, a := range ai.Addrs {
		if !isCircuit(a) {
			return network.WithForceDirectDial(ctx, "meshd connect: direct besides relayed")
		}
	}
	return ctx
}

// rememberCircuit keeps, for a link over a relayed connection, the
// circuit the connection runs through (<relay address>/p2p/<relay>/p2p-circuit)
// among the peer's addresses, so that dialRelayed can reconnect through
// it when the relay ends the connection. The peer may not announce that
// circuit itself: libp2p announces circuits only through relays with
// public addresses. The peerstore keeps it while connected and for
// peerstore.RecentlyConnectedAddrTTL after.
func (h *Host) rememberCircuit(l *link) {
	if l.limited() {
		h.host.Peerstore().AddAddr(l.peer, l.s.Conn().RemoteMultiaddr(), peerstore.ConnectedAddrTTL)
	}
}

// dialRelayed connects to p through the circuit addresses the peerstore
// knows for it (identify lists them for a peer behind NAT that holds a
// relay reservation), after a direct dial failed with err.
func (h *Host) dialRelayed(ctx context.Context, p peer.ID, err error) error {
	var circuits []ma.Multiaddr
	for _, a := range h.host.Peerstore().Addrs(p) {
		if isCircuit(a) {
			circuits = append(circuits, a)
		}
	}
	if len(circuits) == 0 {
		return err
	}
	if rerr := h.host.Connect(ctx, peer.AddrInfo{ID: p, Addrs: circuits}); rerr != nil {
		return fmt.Errorf("%w; through a relay: %w", err, rerr)
	}
	return nil
}
