package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/p2p"
)

var _ p2p.AddrGuard = (*guard)(nil)

// dialAs is one inbound libp2p connection as the gater sees it: the
// accept check, then (if it passed) the security handshake, then the
// check of the peer ID it proved. It reports whether a handshake ran and
// whether the connection was let in.
func dialAs(g *guard, p peer.ID, ip netip.Addr) (handshake, in bool) {
	if !g.AllowAccept(ip) {
		return false, false
	}
	return true, g.AllowSecured(p, ip) && g.AllowLink(p, meshAddrOf(p)) == nil
}

// meshAddrOf is the mesh address peer p proves in its hello: one of its
// own (a flooder mints both).
func meshAddrOf(p peer.ID) protocol.Address {
	var a protocol.Address
	copy(a[:], p)
	return a
}

// floodUntilKicked sends junk as p until the guard cuts it off; it returns
// the frames it took.
func floodUntilKicked(t *testing.T, g *guard, p peer.ID) int {
	t.Helper()
	for n := 1; n < 1_000_000; n++ {
		if err := g.Frame(p, meshAddrOf(p), junkFrame(8)); errors.Is(err, ErrOffender) {
			return n
		}
	}
	t.Fatalf("%s never cut off", p)
	return 0
}

// TestGuardAddrFlooder: a flooder cut off and cooled down that keeps
// connecting (about 100 times a second, as BenchmarkHonestUnderFlood's
// does), with the same peer ID or a new one for each attempt, must not
// cost the victim a security handshake per attempt; an honest peer on
// another address is let in all along.
func TestGuardAddrFlooder(t *testing.T) {
	for _, newIDs := range []bool{false, true} {
		t.Run(fmt.Sprintf("new-peer-IDs=%v", newIDs), func(t *testing.T) {
			clk := newFakeClock()
			g := testGuard(guardLimits(), clk)
			bad, good := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
			p := peer.ID("flooder-0")
			if _, in := dialAs(g, p, bad); !in {
				t.Fatal("the flooder's first connection refused")
			}
			frames := floodUntilKicked(t, g, p)
			handshakes := 0
			for i := 1; i <= 1000; i++ { // 10 s at 100 attempts a second
				clk.add(10 * time.Millisecond)
				if newIDs {
					p = peer.ID(fmt.Sprintf("flooder-%d", i))
				}
				hs, in := dialAs(g, p, bad)
				if hs {
					handshakes++
				}
				if in {
					frames += floodUntilKicked(t, g, p)
				}
				if i%100 == 0 {
					if _, in := dialAs(g, peer.ID(fmt.Sprintf("honest-%d", i)), good); !in {
						t.Fatalf("honest peer refused after %d flood attempts", i)
					}
				}
			}
			t.Logf("1000 attempts in 10 s: %d security handshakes, %d junk frames taken", handshakes, frames)
			if handshakes > 20 {
				t.Errorf("%d security handshakes for 1000 attempts of a cut-off flooder, want at most 20", handshakes)
			}
			if limit := 4 * guardLimits().PeerStrikes; frames > limit {
				t.Errorf("%d junk frames taken, want at most %d", frames, limit)
			}
		})
	}
}

// TestGuardAddrHonestNAT: honest peers behind one NAT address are let in
// as long as they connect at a pace an honest peer keeps (all at once
// after an outage, then one new connection each every few seconds); a
// flooder among them gets the address cooled down, but only for a
// minute, never for good.
func TestGuardAddrHonestNAT(t *testing.T) {
	clk := newFakeClock()
	g := testGuard(guardLimits(), clk)
	nat := netip.MustParseAddr("2001:db8::1")
	honest := func(i int) peer.ID { return peer.ID(fmt.Sprintf("honest-%d", i)) }
	for i := range addrAcceptBurst {
		if _, in := dialAs(g, honest(i), nat); !in {
			t.Fatalf("honest peer %d of %d behind one NAT refused at start-up", i, addrAcceptBurst)
		}
	}
	for round := range 60 { // ten minutes, each peer reconnecting every 10 s
		for i := range addrAcceptBurst {
			clk.add(10 * time.Second / addrAcceptBurst)
			if _, in := dialAs(g, honest(i), netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))); !in {
				t.Fatalf("round %d: honest peer %d refused", round, i)
			}
		}
	}
	// A flooder in the same /64 is cut off three times: the block cools down.
	for i := range 3 {
		p := peer.ID(fmt.Sprintf("flooder-%d", i))
		if _, in := dialAs(g, p, nat); !in {
			t.Fatalf("flooder's connection %d refused before it did wrong", i)
		}
		floodUntilKicked(t, g, p)
	}
	if hs, _ := dialAs(g, honest(0), nat); hs {
		t.Fatal("the flooder's address block was not cooled down")
	}
	if n := g.stats.addrCoolDowns.Load(); n != 1 {
		t.Errorf("meshd_addresses_cooled_down_total %d, want 1", n)
	}
	clk.add(addrCoolDown)
	if _, in := dialAs(g, honest(0), nat); !in {
		t.Fatal("honest peer behind the NAT still refused after the address cool-down ended")
	}
}

// TestGuardAddrChurn: connecting faster than addrAcceptRate is refused
// over the rate but is no offence: after a pause the address is let in.
func TestGuardAddrChurn(t *testing.T) {
	clk := newFakeClock()
	g := testGuard(guardLimits(), clk)
	ip := netip.MustParseAddr("192.0.2.7")
	refused := 0
	for i := range 1000 {
		clk.add(time.Millisecond)
		if _, in := dialAs(g, peer.ID(fmt.Sprintf("churn-%d", i)), ip); !in {
			refused++
		}
	}
	if want := 1000 - addrAcceptBurst - addrAcceptRate; refused < want || g.stats.refusedAddrRate.Load() != uint64(refused) {
		t.Errorf("%d of 1000 attempts in a second refused (%d by rate), want at least %d", refused, g.stats.refusedAddrRate.Load(), want)
	}
	clk.add(time.Second)
	if _, in := dialAs(g, "churn-later", ip); !in || g.stats.addrCoolDowns.Load() != 0 {
		t.Errorf("address refused after a pause (%v) or cooled down (%d) for its rate alone", in, g.stats.addrCoolDowns.Load())
	}
}

// TestGuardAddrBlockFlood: connections from ever new IPv6 /64s keep the
// address table at maxTracked, and a cooled-down flooder who keeps
// trying stays cooled down through them (its IPv4-mapped form too).
func TestGuardAddrBlockFlood(t *testing.T) {
	clk := newFakeClock()
	g := testGuard(guardLimits(), clk)
	flooder := netip.MustParseAddr("192.0.2.66")
	g.mu.Lock()
	g.addrOffenceLocked(clk.now(), addrBlock(flooder), addrOffences+1)
	g.mu.Unlock()
	base := netip.MustParseAddr("2001:db8::1").As16()
	for i := range 2 * maxTracked {
		clk.add(time.Millisecond)
		a := base
		a[6], a[7] = byte(i>>8), byte(i)
		g.AllowAccept(netip.AddrFrom16(a))
		if i%1000 == 0 && g.AllowAccept(netip.AddrFrom16(netip.AddrFrom4(flooder.As4()).As16())) {
			t.Fatalf("the cooled-down flooder was let in after %d new blocks", i)
		}
	}
	if g.addrs.len() != maxTracked || g.addrs.order.Len() != maxTracked {
		t.Fatalf("%d blocks tracked (order %d), want %d", g.addrs.len(), g.addrs.order.Len(), maxTracked)
	}
	if g.AllowAccept(flooder) {
		t.Fatal("the cooled-down flooder was let in")
	}
}

// TestGuardPeerTableFlood: minted peer IDs keep the peer table at
// maxTracked; a peer heard from all along keeps its limiters (its used
// frame burst), and the table and its order stay one.
func TestGuardPeerTableFlood(t *testing.T) {
	clk := newFakeClock()
	g := testGuard(guardLimits(), clk)
	ip := netip.MustParseAddr("2001:db8::1").As16()
	g.AllowSecured("steady", netip.AddrFrom16(ip))
	for i := range 2 * maxTracked {
		a := ip
		a[6], a[7] = byte(i>>8), byte(i)
		g.AllowSecured(peer.ID(fmt.Sprintf("minted-%d", i)), netip.AddrFrom16(a))
		if i%1000 == 0 {
			g.mu.Lock()
			g.stateLocked(p2pKey("steady")).frames.AllowN(clk.now(), 1)
			g.mu.Unlock()
		}
	}
	if g.peers.len() != maxTracked || g.peers.order.Len() != maxTracked {
		t.Fatalf("%d peers tracked (order %d), want %d", g.peers.len(), g.peers.order.Len(), maxTracked)
	}
	st, _ := g.peers.get(p2pKey("steady"))
	if st == nil || st.frames.TokensAt(clk.now()) != float64(g.cfg.PeerFrameBurst-9) {
		t.Fatal("the peer heard from all along lost its limiters")
	}
}
