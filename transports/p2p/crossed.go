package p2p

import (
	"context"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// crossedPause bounds the random pause before a crossed dial is tried
// again: long enough that the two hosts' second dials do not cross too
// (they would have to start within a round trip of each other), short
// enough to add little to a connect.
const crossedPause = 250 * time.Millisecond

// crossedDial reports whether a failed dial to p may have crossed p's dial
// to this host: libp2p dials TCP from its listen port, so two hosts dialing
// each other at once may get ONE TCP connection (a TCP simultaneous open)
// on which both run the security handshake as its initiator, and both
// fail ("noise: message is too short"), leaving neither connected. Any
// failure of the security handshake with p not connected qualifies: the
// retry it earns is one dial.
func (h *Host) crossedDial(p peer.ID, err error) bool {
	return strings.Contains(err.Error(), "failed to negotiate security protocol") &&
		h.host.Network().Connectedness(p) != network.Connected
}

// redialCrossed dials ai once more after a random pause (both hosts
// retry, at different moments), unless p's own dial connected meanwhile.
// libp2p's dial backoff, set by the failed dial, is bypassed.
func (h *Host) redialCrossed(ctx context.Context, ai peer.AddrInfo) error {
	t := time.NewTimer(time.Duration(h.redial.cfg.Rand() * float64(crossedPause)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if h.host.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	return h.host.Connect(network.WithForceDirectDial(ctx, "meshd: crossed dial"), ai)
}
