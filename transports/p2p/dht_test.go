package p2p

import (
	"errors"
	"testing"
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
	// The bootstrap connections bring links up too.
	for _, h := range []*Host{a, c} {
		if up := waitEvent[LinkUp](t, ctx, h); up.Peer != b.ID() {
			t.Fatalf("LinkUp with %s, want %s", up.Peer, b.ID())
		}
	}
	waitEvent[LinkUp](t, ctx, b)
	waitEvent[LinkUp](t, ctx, b)

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
	up := waitEvent[LinkUp](t, ctx, c)
	if up.Peer != a.ID() || up.Address != a.cfg.Identity.Address() {
		t.Fatalf("LinkUp %+v", up)
	}
	if up := waitEvent[LinkUp](t, ctx, a); up.Peer != c.ID() {
		t.Fatalf("LinkUp on a with %s", up.Peer)
	}
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
