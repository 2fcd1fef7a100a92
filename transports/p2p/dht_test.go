package p2p

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDHTLookupThroughThirdHost: A and C know only B. A publishes its
// record, C looks it up through the DHT and connects to A.
func TestDHTLookupThroughThirdHost(t *testing.T) {
	ctx := testContext(t)
	b := newTestHost(t, 21, nil)
	a := newTestHost(t, 20, func(c *Config) { c.Bootstrap = b.Addrs() })
	c := newTestHost(t, 22, func(c *Config) { c.Bootstrap = b.Addrs() })

	for _, w := range []struct {
		h *Host
		p *Host
	}{{a, b}, {c, b}, {b, a}, {b, c}} {
		if err := w.h.WaitDHTPeer(ctx, w.p.ID()); err != nil {
			t.Fatal(err)
		}
	}
	// The bootstrap connections bring links up too. A and C may also meet
	// each other on their own (each learns of the other from B's DHT
	// table), so links are awaited by peer, in whatever order they come.
	ups := map[*Host]map[peer.ID]LinkUp{a: {}, b: {}, c: {}}
	waitLink := func(h *Host, p peer.ID) LinkUp {
		t.Helper()
		for {
			if up, ok := ups[h][p]; ok {
				return up
			}
			up := waitEvent[LinkUp](t, ctx, h)
			ups[h][up.Peer] = up
		}
	}
	waitLink(a, b.ID())
	waitLink(c, b.ID())
	waitLink(b, a.ID())
	waitLink(b, c.ID())

	if _, err := c.Lookup(ctx, testIdentity(t, 99).Address()); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("lookup of an unpublished address: %v, want ErrNoRecord", err)
	}
	if err := a.PublishRecord(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Lookup(ctx, a.cfg.Identity.Address())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Peer != a.ID() || !rec.Identity.Equal(a.cfg.Identity.Public()) || len(rec.Addrs) == 0 {
		t.Fatalf("record %+v", rec)
	}
	if err := c.ConnectInfo(ctx, rec.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if up := waitLink(c, a.ID()); up.Address != a.cfg.Identity.Address() {
		t.Fatalf("LinkUp %+v", up)
	}
	waitLink(a, c.ID())
	// A newer record replaces the older one.
	if err := a.PublishRecord(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPublishWithoutPeers(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 23, nil)
	if err := a.PublishRecord(ctx); err == nil {
		t.Fatal("publish with an empty routing table succeeded")
	}
}
