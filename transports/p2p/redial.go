package p2p

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// Redialling: the host keeps a bounded set of peers it wants to stay
// linked to (Config.KnownPeers from an earlier run, the bootstrap peers,
// and every peer a meshd link came up with). A peer of the set that has no
// link is dialled again after a jittered exponential backoff, so the mesh
// heals after either side restarts (also on a new port: the restarted side
// dials, the other learns its new address from the connection; see
// plausibleAddrs for which addresses are remembered) or a partition
// ends, without mDNS and without anyone running meshctl connect.

// ErrKeepalive ends a link whose peer stopped answering pings.
var ErrKeepalive = errors.New("p2p: peer stopped answering keepalive pings")

// RedialConfig tunes redialling. The zero value is the defaults.
type RedialConfig struct {
	// Base is the first retry delay (default DefaultRedialBase); each
	// failed dial doubles it up to Max (default DefaultRedialMax).
	Base, Max time.Duration
	// Rand returns a number in [0, 1) for the jitter (default
	// math/rand/v2.Float64; tests inject their own).
	Rand func() float64
	// Off turns redialling off (tests of one-shot behaviour).
	Off bool
	// ForgetAfter is how long a peer (not a bootstrap peer) may stay
	// unreachable before it is dropped from the set (default
	// DefaultForgetAfter), so that dead entries are not dialled forever.
	ForgetAfter time.Duration
}

func (c RedialConfig) withDefaults() RedialConfig {
	if c.Base <= 0 {
		c.Base = DefaultRedialBase
	}
	if c.Max < c.Base {
		c.Max = max(DefaultRedialMax, c.Base)
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	return c
}

// backoff is the delay before retry number attempt (0 = the first after a
// link went down): Base·2^attempt capped at Max, of which the upper half is
// jittered by r in [0, 1) so that peers cut off together do not all
// redial in the same instant.
func (c RedialConfig) backoff(attempt int, r float64) time.Duration {
	d := c.Base
	for range min(attempt, 30) {
		if d >= c.Max {
			break
		}
		d *= 2
	}
	d = min(d, c.Max)
	return d/2 + time.Duration(r*float64(d/2))
}

// redialTarget is one peer the host wants a link to.
type redialTarget struct {
	addrs   []ma.Multiaddr
	attempt int
	next    time.Time
	dialing bool
	seen    time.Time      // last link up (zero: never this run)
	links   int            // links up now (a replaced link's down may follow its successor's up)
	pinned  bool           // a bootstrap peer: never evicted
	boot    []ma.Multiaddr // a bootstrap peer's configured addresses: always kept
	lost    time.Time      // unreachable since (added, last link down, or last seen connected)
}

// redialer owns the set of peers to keep linked.
type redialer struct {
	h   *Host
	cfg RedialConfig

	mu      sync.Mutex
	targets map[peer.ID]*redialTarget
	wake    chan struct{}
}

func newRedialer(h *Host, cfg RedialConfig) *redialer {
	return &redialer{h: h, cfg: cfg.withDefaults(), targets: map[peer.ID]*redialTarget{}, wake: make(chan struct{}, 1)}
}

// add puts p into the set (or merges addrs into its entry). The set is
// bounded by MaxKnownPeers: a full set drops the entry linked longest ago
// among those without a link up and not bootstrap peers, or leaves p out
// if there is none, so that a flood of new identities cannot push out the
// peers the node is linked to.
func (r *redialer) add(p peer.ID, addrs []ma.Multiaddr, now time.Time) {
	if p == r.h.self {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.targets[p]
	if t == nil {
		if len(r.targets) >= MaxKnownPeers && !r.evictLocked() {
			return
		}
		t = &redialTarget{next: now, lost: now}
		r.targets[p] = t
	}
	for _, a := range addrs {
		if len(t.addrs) >= maxAddrsPerPeer {
			break
		}
		if !slices.ContainsFunc(t.addrs, a.Equal) && !isCircuit(a) {
			t.addrs = append(t.addrs, a)
		}
	}
}

// evictLocked drops the evictable entry linked longest ago; false if no
// entry is evictable.
func (r *redialer) evictLocked() bool {
	var oldest *redialTarget
	var id peer.ID
	for p, t := range r.targets {
		if t.links > 0 || t.pinned {
			continue
		}
		if oldest == nil || t.seen.Before(oldest.seen) {
			oldest, id = t, p
		}
	}
	if oldest == nil {
		return false
	}
	delete(r.targets, id)
	return true
}

// pin keeps p (a bootstrap peer) in the set for good.
func (r *redialer) pin(p peer.ID) {
	r.mu.Lock()
	if t := r.targets[p]; t != nil {
		t.pinned = true
		t.boot = slices.Clone(t.addrs)
	}
	r.mu.Unlock()
}

// linkUp resets p's backoff.
func (r *redialer) linkUp(p peer.ID, addrs []ma.Multiaddr, now time.Time) {
	r.add(p, addrs, now)
	r.mu.Lock()
	if t := r.targets[p]; t != nil {
		t.attempt, t.seen = 0, now
		t.links++
		// What the connection shows now replaces what was remembered:
		// the peer may have moved to a new port.
		if len(addrs) > 0 {
			// The operator's addresses for a bootstrap peer stay first.
			t.addrs = slices.Clone(t.boot)
			for _, a := range addrs {
				if !slices.ContainsFunc(t.addrs, a.Equal) {
					t.addrs = append(t.addrs, a)
				}
			}
			t.addrs = slices.DeleteFunc(t.addrs, isCircuit)
			if len(t.addrs) > maxAddrsPerPeer {
				t.addrs = t.addrs[:maxAddrsPerPeer]
			}
		}
	}
	r.mu.Unlock()
}

// linkDown schedules the first redial of p.
func (r *redialer) linkDown(p peer.ID, now time.Time) {
	r.mu.Lock()
	if t := r.targets[p]; t != nil && t.links > 0 {
		t.links--
		if t.links == 0 {
			t.lost = now
		}
	}
	if t := r.targets[p]; t != nil && !t.dialing {
		t.attempt = 0
		t.next = now.Add(r.cfg.backoff(0, r.cfg.Rand()))
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// satisfied reports whether p needs no dial: a link is up, or a connection
// is up to a peer that does not speak the link protocol (a plain
// bootstrap peer).
func (r *redialer) satisfied(p peer.ID) bool {
	h := r.h
	h.mu.Lock()
	l := h.links[p]
	h.mu.Unlock()
	if l != nil && !l.isClosed() {
		if h.opensTo(p) && needsUpgrade(l, h.hasDirectConn(p)) {
			h.openLink(p) // a direct connection came up: move the link there
		}
		return true
	}
	if !h.connected(p) {
		return false
	}
	ok, _ := h.host.Peerstore().SupportsProtocols(p, LinkProtocol)
	if len(ok) == 0 {
		return true
	}
	if h.opensTo(p) {
		h.openLink(p)
	}
	return false
}

// loop dials due targets until the host closes.
func (r *redialer) loop() {
	defer r.h.wg.Done()
	tick := time.NewTicker(redialTick)
	defer tick.Stop()
	for {
		select {
		case <-r.h.ctx.Done():
			return
		case <-tick.C:
		case <-r.wake:
		}
		r.dialDue(time.Now())
	}
}

func (r *redialer) dialDue(now time.Time) {
	r.mu.Lock()
	r.forgetLocked(now)
	var due []peer.ID
	for p, t := range r.targets {
		if !t.dialing && !now.Before(t.next) {
			due = append(due, p)
		}
	}
	r.mu.Unlock()
	for _, p := range due {
		if r.satisfied(p) {
			r.mu.Lock()
			if t := r.targets[p]; t != nil {
				t.attempt, t.next = 0, now.Add(r.cfg.backoff(0, r.cfg.Rand()))
				t.lost = now
			}
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		t := r.targets[p]
		if t == nil || t.dialing {
			r.mu.Unlock()
			continue
		}
		t.dialing = true
		ai := peer.AddrInfo{ID: p, Addrs: slices.Clone(t.addrs)}
		r.mu.Unlock()
		r.h.wg.Add(1)
		go r.dial(ai)
	}
}

// forgetLocked drops the peers without a link that stayed unreachable for
// ForgetAfter, except bootstrap peers (configured by the operator).
func (r *redialer) forgetLocked(now time.Time) {
	for p, t := range r.targets {
		if t.links == 0 && !t.pinned && now.Sub(t.lost) >= r.cfg.ForgetAfter {
			delete(r.targets, p)
			r.h.log.Info("forgot a peer unreachable too long", "peer", p, "since", t.lost)
		}
	}
}

// setLost sets when p was last reachable (a remembered peer's last link,
// from an earlier run), if p has no link up.
func (r *redialer) setLost(p peer.ID, at time.Time) {
	r.mu.Lock()
	if t := r.targets[p]; t != nil && t.links == 0 && !at.IsZero() {
		t.lost = at
	}
	r.mu.Unlock()
}

// dial connects to ai (the remembered addresses and whatever the
// peerstore learned since) and schedules the next attempt.
func (r *redialer) dial(ai peer.AddrInfo) {
	defer r.h.wg.Done()
	dctx, done, err := r.h.startDial(r.h.ctx)
	if err != nil {
		return
	}
	defer done()
	ctx, cancel := context.WithTimeout(dctx, r.h.cfg.Timeouts.Redial)
	defer cancel()
	// A connection that is up but has no link may be half dead: dial the
	// remembered addresses anyway (ForceDirectDial skips relays).
	err = r.h.host.Connect(network.WithForceDirectDial(ctx, "meshd redial"), ai)
	if err != nil {
		// A peer behind NAT is reachable only through its relay.
		err = r.h.dialRelayed(ctx, ai.ID, err)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.targets[ai.ID]
	if t == nil {
		return
	}
	t.dialing = false
	if err != nil {
		r.h.log.Debug("redial failed", "peer", ai.ID, "attempt", t.attempt, "err", err)
	}
	t.next = now.Add(r.cfg.backoff(t.attempt, r.cfg.Rand()))
	t.attempt++
}

// known lists the peers of the set with their addresses.
func (r *redialer) known() []peer.AddrInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]peer.AddrInfo, 0, len(r.targets))
	for p, t := range r.targets {
		out = append(out, peer.AddrInfo{ID: p, Addrs: slices.Clone(t.addrs)})
	}
	slices.SortFunc(out, func(a, b peer.AddrInfo) int { return compareString(string(a.ID), string(b.ID)) })
	return out
}

// KnownPeers lists the peers the host redials, with their last addresses
// (for the daemon to remember across restarts).
func (h *Host) KnownPeers() []peer.AddrInfo {
	if h.redial == nil {
		return nil
	}
	return h.redial.known()
}

// peerAddrs is what the host may remember of p's addresses now: for each
// connection its remote address and the plausible ones among the
// peerstore's (identify's listen addresses; see plausibleAddrs), at most
// maxAddrsPerPeer.
func (h *Host) peerAddrs(p peer.ID) []ma.Multiaddr {
	claimed := h.host.Peerstore().Addrs(p)
	var out []ma.Multiaddr
	for _, c := range h.host.Network().ConnsToPeer(p) {
		for _, a := range plausibleAddrs(c.RemoteMultiaddr(), claimed) {
			if !slices.ContainsFunc(out, a.Equal) {
				out = append(out, a)
			}
		}
	}
	if len(out) > maxAddrsPerPeer {
		out = out[:maxAddrsPerPeer]
	}
	return out
}

// keepalive pings the peer of l every Timeouts.KeepaliveInterval over one
// ping stream (opened again when the peer resets it) and takes the link
// down when no answer came for Timeouts.KeepaliveTimeout: a TCP connection
// whose far end vanished (power cut, partition) otherwise stays "up" until
// the kernel or yamux gives up, tens of seconds during which frames go
// into it.
func (h *Host) keepalive(l *link) {
	defer h.wg.Done()
	last := time.Now()
	dead := time.NewTimer(h.cfg.Timeouts.KeepaliveTimeout)
	defer dead.Stop()
	for {
		ctx, cancel := context.WithCancel(h.ctx)
		results := ping.Ping(ctx, h.host, l.peer)
		ok := h.keepaliveStream(l, results, &last, dead)
		cancel()
		if !ok {
			return
		}
		// The stream ended (the peer resets ping streams after a while):
		// wait a moment before the next one.
		select {
		case <-l.closed:
			return
		case <-dead.C:
			h.keepaliveFailed(l, last)
			return
		case <-time.After(h.cfg.Timeouts.KeepaliveInterval):
		}
	}
}

// keepaliveStream reads ping results, one per Timeouts.KeepaliveInterval. It returns
// false when the link is done (closed or declared dead), true when the
// ping stream failed and a new one should be tried.
func (h *Host) keepaliveStream(l *link, results <-chan ping.Result, last *time.Time, dead *time.Timer) bool {
	pace := time.NewTimer(0)
	defer pace.Stop()
	for {
		select {
		case <-l.closed:
			return false
		case <-dead.C:
			h.keepaliveFailed(l, *last)
			return false
		case <-pace.C:
		}
		select {
		case <-l.closed:
			return false
		case <-dead.C:
			h.keepaliveFailed(l, *last)
			return false
		case res, ok := <-results:
			if !ok || res.Error != nil {
				return true
			}
			*last = time.Now()
			dead.Reset(h.cfg.Timeouts.KeepaliveTimeout)
			pace.Reset(h.cfg.Timeouts.KeepaliveInterval)
		}
	}
}

func (h *Host) keepaliveFailed(l *link, last time.Time) {
	h.log.Info("meshd link dead: no keepalive answer", "peer", l.peer, "silent", time.Since(last).Round(time.Millisecond))
	l.shutdown(ErrKeepalive)
	// The connection is as dead as the link: close it, so that the next
	// dial makes a new one instead of reusing it.
	_ = h.host.Network().ClosePeer(l.peer)
}

// waitIdentify waits (at most identifyWait) for identify on c, so that
// the addresses remembered for the peer include its listen addresses
// (after a restart on a new port, the port it can be dialled on).
func (h *Host) waitIdentify(c network.Conn) {
	ids, ok := h.host.(interface{ IDService() identify.IDService })
	if !ok {
		return
	}
	t := time.NewTimer(identifyWait)
	defer t.Stop()
	select {
	case <-ids.IDService().IdentifyWait(c):
	case <-t.C:
	case <-h.ctx.Done():
	}
}
