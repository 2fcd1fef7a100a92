package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/protocol"
)

// IdentifyProtocolVersion is the protocol version meshd reports in
// identify (the family of its protocols: link version 2); the agent
// version is Config.AgentVersion ("meshd/<version>").
const IdentifyProtocolVersion = "meshd/2"

// Why a connection carries no meshd link.
var (
	// ErrNotMeshd: the peer does not offer the link protocol (a plain
	// libp2p node, or a meshd of another link version).
	ErrNotMeshd = errors.New("p2p: peer does not speak meshd's link protocol " + LinkProtocol)
	// ErrNoLinkYet: the peer offers the link protocol but no link came up
	// in time (the handshake failed or is still running; the host keeps
	// trying).
	ErrNoLinkYet = errors.New("p2p: no meshd link formed yet")
)

// WaitLink waits until a meshd link to p is up and returns its mesh
// address, or says why there is none: ErrNotMeshd (with the agent the
// peer reported) once identify showed the peer lacks the protocol,
// ErrNoLinkYet when ctx ends first, ErrClosed.
func (h *Host) WaitLink(ctx context.Context, p peer.ID) (protocol.Address, error) {
	for {
		h.mu.Lock()
		l, closing, changed := h.links[p], h.closing, h.linkChanged
		h.mu.Unlock()
		switch {
		case closing:
			return protocol.Address{}, ErrClosed
		case l != nil && !l.isClosed():
			return l.id.Address(), nil
		}
		if err := h.notMeshd(p); err != nil {
			return protocol.Address{}, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if err := h.notMeshd(p); err != nil {
				return protocol.Address{}, err
			}
			return protocol.Address{}, fmt.Errorf("%w: %w", ErrNoLinkYet, ctx.Err())
		}
	}
}

// notMeshd reports ErrNotMeshd when identify has run on a connection to p
// and p did not list the link protocol.
func (h *Host) notMeshd(p peer.ID) error {
	if h.host.Network().Connectedness(p) != network.Connected {
		return nil
	}
	protos, err := h.host.Peerstore().GetProtocols(p)
	if err != nil || len(protos) == 0 {
		return nil // identify has not finished
	}
	for _, pr := range protos {
		if pr == LinkProtocol {
			return nil
		}
	}
	agent, _ := h.host.Peerstore().Get(p, "AgentVersion")
	return fmt.Errorf("%w (agent %q)", ErrNotMeshd, fmt.Sprint(agent))
}

// signalLinkChange wakes WaitLink callers. h.mu is held.
func (h *Host) signalLinkChangeLocked() {
	close(h.linkChanged)
	h.linkChanged = make(chan struct{})
}

// RecordsRefused is how many DHT records (PUTs from peers, query answers)
// the record validator refused since start.
func (h *Host) RecordsRefused() uint64 { return h.refusedRecords.Load() }

// refusedLog allows one log line per refusedLogEvery.
type refusedLog struct {
	mu     sync.Mutex
	last   time.Time
	missed uint64
}

// recordRefused counts a refused record and logs it, at most once per
// refusedLogEvery (with how many went unlogged): a peer sending bad
// records must not flood the log.
func (h *Host) recordRefused(key string, err error) {
	h.refusedRecords.Add(1)
	r := &h.refusedLog
	now := time.Now()
	r.mu.Lock()
	if !r.last.IsZero() && now.Sub(r.last) < refusedLogEvery {
		r.missed++
		r.mu.Unlock()
		return
	}
	missed := r.missed
	r.last, r.missed = now, 0
	r.mu.Unlock()
	h.log.Info("DHT record refused", "key", fmt.Sprintf("%q", truncate(key, 80)), "err", err, "unlogged_since_last", missed)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// connectedVia reports whether a connection to ai.ID runs over one of
// ai.Addrs.
func (h *Host) connectedVia(ai peer.AddrInfo) bool {
	for _, c := range h.host.Network().ConnsToPeer(ai.ID) {
		for _, a := range ai.Addrs {
			if c.RemoteMultiaddr().Equal(a) {
				return true
			}
		}
	}
	return false
}

// probeAddrs dials ai.ID at each of ai.Addrs with the transport itself (a
// secured, authenticated connection, closed again: the peer is connected
// already) until one answers. An address that reaches another peer or
// nothing is an error, not "connected".
func (h *Host) probeAddrs(ctx context.Context, ai peer.AddrInfo) error {
	sw, ok := h.host.Network().(interface {
		TransportForDialing(ma.Multiaddr) transport.Transport
	})
	if !ok {
		return nil
	}
	var errs []error
	for _, a := range ai.Addrs {
		tpt := sw.TransportForDialing(a)
		if tpt == nil {
			errs = append(errs, fmt.Errorf("%s: no transport dials it", a))
			continue
		}
		c, err := tpt.Dial(ctx, a, ai.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		_ = c.Close()
		return nil
	}
	return fmt.Errorf("p2p: connect to %s (connected over another address): %w", ai.ID, errors.Join(errs...))
}
