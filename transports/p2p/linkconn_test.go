package p2p

import (
	"testing"

	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/link/linktest"
)

// TestLinkConformance runs the link contract's suite on libp2p links.
func TestLinkConformance(t *testing.T) {
	seed := uint64(500)
	linktest.Run(t, func(t *testing.T) (contract.Link, contract.Link) {
		seed += 2
		ctx := testContext(t)
		a, b := newTestHost(t, seed, nil), newTestHost(t, seed+1, nil)
		la, lb := NewLinks(a, a.Events()), NewLinks(b, b.Events())
		t.Cleanup(func() { la.Close(); lb.Close() })
		if _, err := a.Connect(ctx, b.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
		var ea, eb contract.Link
		for ea == nil || eb == nil {
			select {
			case l := <-la.Links():
				ea = l
			case l := <-lb.Links():
				eb = l
			case <-ctx.Done():
				t.Fatal("no link")
			}
		}
		return ea, eb
	}, linktest.Options{MaxBuffered: 64 << 20})
}
