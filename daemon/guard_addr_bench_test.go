package daemon

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkAllowAcceptNewBlocks: an IPv6 flood where every connection
// comes from a new /64 (one /48 holds 65,536), with the address table
// full: the cost of one accept check.
func BenchmarkAllowAcceptNewBlocks(b *testing.B) {
	g := testGuard(guardLimits(), newFakeClock())
	base := netip.MustParseAddr("2001:db8::1").As16()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := base
		a[4], a[5], a[6], a[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		g.AllowAccept(netip.AddrFrom16(a))
	}
}

// BenchmarkAllowSecuredNewPeers: a flood of new peer IDs, each from a new
// /64 (so past the accept check), with the peer table full: the cost of
// the check after each security handshake.
func BenchmarkAllowSecuredNewPeers(b *testing.B) {
	g := testGuard(guardLimits(), newFakeClock())
	base := netip.MustParseAddr("2001:db8::1").As16()
	ids := make([]peer.ID, 1<<16)
	for i := range ids {
		ids[i] = peer.ID(fmt.Sprintf("minted-%d", i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := base
		a[6], a[7] = byte(i>>8), byte(i)
		g.AllowSecured(ids[i%len(ids)], netip.AddrFrom16(a))
	}
}
