package p2p

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// meshGraph returns the edges of a sparse connected random graph on n
// nodes: a ring plus one random chord per node, from seed.
func meshGraph(n int, seed uint64) [][2]int {
	rnd := rand.New(rand.NewPCG(seed, 0x9055))
	var edges [][2]int
	for i := range n {
		edges = append(edges, [2]int{i, (i + 1) % n})
		if j := rnd.IntN(n); j != i && j != (i+1)%n && j != (i+n-1)%n {
			edges = append(edges, [2]int{i, j})
		}
	}
	return edges
}

// starved raises the host timeouts for tests that run dozens of hosts in
// one process. 32 hosts under the race detector on a machine whose 2
// cores are shared stall for seconds at a time (gossipsub heartbeats of
// 0.8 s; every link's keepalive pings unanswered for 4 s at the same
// moment; a security handshake on loopback past libp2p's 5 s): the
// product's timeouts then take healthy links down and close their
// connections (which drops gossip meshes and frames in flight), or fail
// the test's own connects. What these tests check does not depend on how
// fast a dead peer is noticed, so each bound is raised to two minutes
// (with a tenth of a core, a 5 s dial takes 50 s), and the keepalive
// pings, which the tests do not need, are spaced out to lighten the load.
func starved(c *Config) {
	c.Timeouts = Timeouts{
		KeepaliveInterval: 5 * time.Second,
		KeepaliveTimeout:  2 * time.Minute,
		Handshake:         2 * time.Minute,
		Dial:              2 * time.Minute,
		DialLocal:         2 * time.Minute,
		Redial:            2 * time.Minute,
	}
}

// TestGossipThirtyHosts: 30 members in a sparse random graph, a
// non-member host connected to two of them, and an attacker that joins the
// channel and publishes forged frames (bad MAC). Every member delivers every
// genuine frame exactly once and no forged one; the non-member gets
// nothing; the attacker's neighbours score it below the publish threshold.
func TestGossipThirtyHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 32 hosts")
	}
	const members = 30
	// It takes 4 s alone and 15 s under -race. The bound is for a starved
	// machine: with a load average of 12 on 2 cores the test got a tenth
	// of a core, and 60 s ran out during the connects.
	ctx, cancel := context.WithTimeout(t.Context(), 10*testTimeout)
	defer cancel()
	key := testChannelKey(t, 30)
	id := key.ID()
	seal := newFrameSealer(30)

	nodes := make([]*gossipNode, members+2)
	for i := range nodes {
		nodes[i] = newGossipNode(t, 300+uint64(i), starved)
	}
	outsider, attacker := nodes[members], nodes[members+1]
	for _, n := range append(slices.Clone(nodes[:members]), attacker) {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	edges := meshGraph(members, 30)
	edges = append(edges, [2]int{members, 3}, [2]int{members, 17})
	victims := []int{0, 11, 22}
	for _, v := range victims {
		edges = append(edges, [2]int{members + 1, v})
	}
	for _, e := range edges {
		if _, err := nodes[e[0]].h.Connect(ctx, nodes[e[1]].h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "a mesh at every member and at the attacker's victims", func() bool {
		for _, n := range append(slices.Clone(nodes[:members]), attacker) {
			if n.h.ChannelMeshPeers(id) == 0 {
				return false
			}
		}
		attackerPeers := topicPeerIDs(attacker.h, id)
		for _, v := range victims {
			if !slices.Contains(topicPeerIDs(nodes[v].h, id), attacker.h.ID()) ||
				!slices.Contains(attackerPeers, nodes[v].h.ID()) {
				return false
			}
		}
		return true
	})

	for i := range 20 {
		if err := attacker.h.PublishChannel(ctx, id, seal.forge(t, key, fmt.Sprint("forged ", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the attacker scored below the publish threshold by its victims", func() bool {
		for _, v := range victims {
			if s, ok := nodes[v].h.GossipPeerScore(attacker.h.ID()); !ok || s >= publishThreshold {
				return false
			}
		}
		return true
	})

	var frames [][]byte
	for i := range 10 {
		f := seal.seal(t, key, fmt.Sprint("genuine ", i))
		frames = append(frames, f)
		if err := nodes[(i*7)%members].h.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "every genuine frame at every member", func() bool {
		for i, n := range nodes[:members] {
			for j, f := range frames {
				if _, times := n.counts(f); times == 0 && (j*7)%members != i {
					return false
				}
			}
		}
		return true
	})
	for i, n := range nodes[:members] {
		want := len(frames)
		for j, f := range frames {
			_, times := n.counts(f)
			if (j*7)%members == i {
				want--
				if times != 0 {
					t.Errorf("member %d got its own frame %d back", i, j)
				}
			} else if times != 1 {
				t.Errorf("member %d delivered frame %d %d times", i, j, times)
			}
		}
		if total, _ := n.counts(frames[0]); total != want {
			t.Errorf("member %d delivered %d frames, want %d (no forged ones)", i, total, want)
		}
	}
	if total, _ := outsider.counts(frames[0]); total != 0 {
		t.Errorf("non-member delivered %d frames", total)
	}
	if st := outsider.h.GossipStats(); st != (GossipStats{}) {
		t.Errorf("non-member validated frames: %+v", st)
	}
	// Honest peers lose nothing: no invalid frames, no delivery deficit
	// penalty (P3 is off), and on one IP address (loopback is exempt from
	// the colocation penalty anyway).
	for i, n := range nodes[:members] {
		for _, p := range topicPeerIDs(n.h, id) {
			if s, ok := n.h.GossipPeerScore(p); ok && s < 0 && p != attacker.h.ID() {
				t.Errorf("member %d scores honest peer %s at %v", i, p, s)
			}
		}
	}
	var rejected int
	for _, v := range victims {
		rejected += int(nodes[v].h.GossipStats().Rejected)
	}
	if rejected == 0 {
		t.Error("no victim rejected a forged frame")
	}
}

// TestGossipCloseStopsDelivery: once Close returns, Deliver is not called
// again, while the other members go on receiving.
func TestGossipCloseStopsDelivery(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 2)
	id := key.ID()
	seal := newFrameSealer(2)
	var closed atomic.Bool
	a, b := newGossipNode(t, 21, nil), newGossipNode(t, 22, nil)
	c := newGossipNode(t, 23, func(cfg *Config) {
		deliver := cfg.Gossip.Deliver
		cfg.Gossip.Deliver = func(f []byte) {
			if closed.Load() {
				t.Error("Deliver called after Close returned")
			}
			deliver(f)
		}
	})
	for _, n := range []*gossipNode{a, b, c} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]*gossipNode{{a, b}, {a, c}, {b, c}} {
		if _, err := pair[0].h.Connect(ctx, pair[1].h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "meshes", func() bool {
		return a.h.ChannelMeshPeers(id) == 2 && b.h.ChannelMeshPeers(id) == 2 && c.h.ChannelMeshPeers(id) == 2
	})
	f1 := seal.seal(t, key, "before")
	if err := a.h.PublishChannel(ctx, id, f1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "first frame at C", func() bool { _, n := c.counts(f1); return n == 1 })
	if err := c.h.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	if err := c.h.JoinChannel(id); err != ErrClosed {
		t.Errorf("JoinChannel after Close: %v, want ErrClosed", err)
	}
	f2 := seal.seal(t, key, "after")
	if err := a.h.PublishChannel(ctx, id, f2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "second frame at B", func() bool { _, n := b.counts(f2); return n == 1 })
}
