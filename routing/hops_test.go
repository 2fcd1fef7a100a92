package routing_test

import (
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

// TestDeliveryHops: a delivery carries the envelope's hop count as it
// arrived: 0 over one link, one more for every forwarder.
func TestDeliveryHops(t *testing.T) {
	n := newTestNet(t, 5)
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	for _, nm := range names {
		n.addNode(nm)
	}
	for i := 0; i+1 < len(names); i++ {
		n.addLink(routing.LinkIP, 10*time.Millisecond, 0, names[i], names[i+1])
	}
	n.run(5 * time.Second)
	n.send("n1", "n2", "next door")
	n.send("n1", "n5", "across the line")
	n.run(30 * time.Second)
	for _, c := range []struct {
		to   string
		hops uint8
	}{{"n2", 0}, {"n5", 3}} {
		in := n.node(c.to).inbox
		if len(in) != 1 {
			t.Fatalf("%s got %d messages", c.to, len(in))
		}
		if in[0].Hops != c.hops {
			t.Errorf("%s: delivery with %d hops, want %d", c.to, in[0].Hops, c.hops)
		}
	}
}
