package routing_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/routing"
)

type sharedCache struct {
	m    map[[32]byte]bool
	hits int
}

func (c *sharedCache) Verified(d [32]byte) bool {
	if c.m[d] {
		c.hits++
	}
	return c.m[d]
}
func (c *sharedCache) AddVerified(d [32]byte) { c.m[d] = true }

// verifyCacheRun runs a mixed network, some of whose clocks are off so that
// their announces look expired or from the future to others, and renders
// everything the engines did.
func verifyCacheRun(t *testing.T, cache routing.VerifyCache) string {
	n := newTestNet(t, 11)
	if cache != nil {
		n.cfg = func(c *routing.Config) { c.VerifyCache = cache }
	}
	for _, nm := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		n.addNode(nm)
	}
	// f and g run 20 minutes ahead: their announces come from the future
	// for the others, but not for each other.
	n.node("f").skew = 20 * time.Minute
	n.node("g").skew = 20 * time.Minute
	n.addLink(routing.LinkLoRa, 0, 0, "a", "b", "c")
	n.addLink(routing.LinkLoRa, 0, 0, "c", "d", "f", "g")
	n.addLink(routing.LinkIP, 20*time.Millisecond, 0, "d", "e")
	n.addLink(routing.LinkIP, 20*time.Millisecond, 0.1, "e", "f")
	n.run(20 * time.Minute)
	n.send("a", "e", "one")
	n.send("e", "b", "two")
	n.send("g", "a", "three")
	n.run(time.Hour)
	var b strings.Builder
	for _, nd := range n.order {
		fmt.Fprintf(&b, "%s %+v\n", nd.name, nd.eng.Counters())
		for _, d := range nd.inbox {
			fmt.Fprintf(&b, "  delivery %x hops %d\n", d.ID, d.Hops)
		}
		for _, ev := range nd.events {
			fmt.Fprintf(&b, "  event %v %d %x %v\n", ev.Kind, ev.Ref, ev.ID, ev.Status)
		}
	}
	for _, l := range n.links {
		fmt.Fprintf(&b, "link %s %d frames %d bytes\n", l.name, l.frames, l.bytes)
	}
	fmt.Fprintf(&b, "errors %d\n", n.errors)
	return b.String()
}

// TestVerifyCacheChangesNothing: engines sharing a VerifyCache do exactly
// what engines verifying on their own do, frame for frame.
func TestVerifyCacheChangesNothing(t *testing.T) {
	without := verifyCacheRun(t, nil)
	c := &sharedCache{m: map[[32]byte]bool{}}
	with := verifyCacheRun(t, c)
	if with != without {
		t.Fatalf("with the cache:\n%s\nwithout:\n%s", with, without)
	}
	if c.hits == 0 || len(c.m) == 0 {
		t.Fatalf("cache never used: %d entries, %d hits", len(c.m), c.hits)
	}
	// The skewed clocks made some announces fail their freshness check,
	// also after they were cached.
	if !regexp.MustCompile(`AdvertsInvalid:[1-9]`).MatchString(without) {
		t.Fatalf("no announce was refused:\n%s", without)
	}
}
