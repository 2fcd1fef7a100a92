package daemon

import (
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// The guard also vets inbound libp2p connections by their remote IP
// address, before the security handshake (p2p.AddrGuard): a peer ID is
// known only after it, and a new one costs nothing, so a flooder refused
// by its peer ID still made the victim run a handshake (an X25519
// exchange and an Ed25519 check) for each of its ~100 attempts a second.
//
// Two checks, both bounded so that honest peers behind one NAT (or a
// carrier-grade NAT: thousands of subscribers on one address) are not
// shut out for long:
//   - a rate: at most addrAcceptRate new connections a second from one
//     address (burst addrAcceptBurst); an honest peer connects once and
//     keeps its connection, redialling after a loss at most every half
//     second. Refused attempts over the rate are not held against the
//     address.
//   - a cool-down of the address: only for what its peers did wrong. A
//     peer cut off (cooled down) while connected from it counts
//     addrKickCost, a connection from it of a peer ID that is cooling
//     down counts one; more than addrOffences within a minute cool the
//     address down for addrCoolDown (at most limits.cool_down), then it
//     starts afresh. Connections already up from the address stay.
//
// A relayed connection passes the accept check of the relay's address
// (any connected peer may present circuits, each under a peer ID of its
// choosing), but what its peer does never counts against that address,
// which serves many peers (p2p's remoteIP leaves them out). IPv6
// addresses count by /64, the block one subscriber gets.

const (
	addrAcceptRate  = 10
	addrAcceptBurst = 40
	addrOffences    = 10
	addrKickCost    = 4
	addrCoolDown    = time.Minute
)

// addrState is one remote address block's limiters.
type addrState struct {
	accepts, offences *rate.Limiter
	until             time.Time // cooling down until
}

// addrBlock is the key an address counts under: the IPv4 address, or the
// IPv6 /64 it is in.
func addrBlock(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	pfx, _ := ip.Prefix(bits)
	return pfx
}

// AllowAccept implements p2p.AddrGuard.
func (g *guard) AllowAccept(ip netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	st := g.addrLocked(addrBlock(ip))
	switch {
	case now.Before(st.until):
		g.stats.refusedAddrCooling.Add(1)
		return false
	case !st.accepts.AllowN(now, 1):
		g.stats.refusedAddrRate.Add(1)
		return false
	}
	return true
}

// AllowSecured implements p2p.AddrGuard.
func (g *guard) AllowSecured(p peer.ID, ip netip.Addr) bool {
	if !g.access.allowsPeerID(p) {
		g.stats.refusedDenied.Add(1)
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if g.coolingLocked(now, p2pKey(p)) {
		g.stats.refusedCooling.Add(1)
		g.addrOffenceLocked(now, addrBlock(ip), 1)
		return false
	}
	g.stateLocked(p2pKey(p)).from = addrBlock(ip)
	return true
}

// addrOffenceLocked counts cost against the address block, and cools it
// down once its peers did too much wrong within a minute.
func (g *guard) addrOffenceLocked(now time.Time, b netip.Prefix, cost int) {
	st := g.addrLocked(b)
	if now.Before(st.until) || st.offences.AllowN(now, cost) {
		return
	}
	st.until = now.Add(min(addrCoolDown, time.Duration(g.cfg.CoolDown)))
	st.offences = newAddrOffences() // afresh once the cool-down ends
	g.stats.addrCoolDowns.Add(1)
	g.pending["address"]++
	g.lastAddr = b
	// Per address only at debug level: an attacker with many addresses
	// would otherwise write a line each; the summary names the last one.
	g.log.Debug("address cooled down", "address", b.String())
	g.summaryLocked(now)
}

func newAddrOffences() *rate.Limiter {
	return rate.NewLimiter(rate.Every(time.Minute/addrOffences), addrOffences)
}

// addrLocked returns the block's limiters, making them on first use.
func (g *guard) addrLocked(b netip.Prefix) *addrState {
	return g.addrs.touch(b, func() *addrState {
		return &addrState{accepts: rate.NewLimiter(addrAcceptRate, addrAcceptBurst), offences: newAddrOffences()}
	})
}

// addrString is b for a log line, empty if there is none.
func addrString(b netip.Prefix) string {
	if !b.IsValid() {
		return ""
	}
	return b.String()
}
