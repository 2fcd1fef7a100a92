package routing_test

import (
	"bytes"
	"testing"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

type openCacheMap struct {
	m          map[[32]byte]protocol.ChannelMessage
	hits, adds int
}

func (c *openCacheMap) Opened(d [32]byte) (protocol.ChannelMessage, bool) {
	m, ok := c.m[d]
	if ok {
		c.hits++
	}
	return m, ok
}

func (c *openCacheMap) AddOpened(d [32]byte, m protocol.ChannelMessage) {
	c.m[d] = m
	c.adds++
}

// TestOpenCacheSameDeliveries: members sharing an OpenCache deliver what
// a member without one delivers (sender and signature included), each
// with a body of its own, and a frame changed in flight (a raised hop
// limit, a flipped ciphertext bit) neither opens from the cache nor enters
// it.
func TestOpenCacheSameDeliveries(t *testing.T) {
	key := floodChannel(t)
	c := &openCacheMap{m: map[[32]byte]protocol.ChannelMessage{}}
	shared := func(cfg *routing.Config) { cfg.OpenCache = c }
	a := newFloodNode(t, "a", nil)
	plain := newFloodNode(t, "plain", nil)
	b := newFloodNode(t, "b", shared)
	d := newFloodNode(t, "d", shared)
	for _, n := range []*floodNode{plain, b, d} {
		n.step(routing.JoinChannel{Key: key})
	}
	a.out = nil
	a.step(routing.Broadcast{Channel: key, Body: []byte("signed, once"), HopLimit: 3, Signed: true})
	if len(a.out) == 0 {
		t.Fatal("broadcast sent nothing")
	}
	frame := a.out[0]
	for _, n := range []*floodNode{plain, b, d} {
		n.receive(epoch, frame)
		if len(n.got) != 1 {
			t.Fatalf("%d deliveries, want 1", len(n.got))
		}
	}
	if c.adds != 1 || c.hits != 1 {
		t.Fatalf("cache: %d added, %d hits; want 1 and 1", c.adds, c.hits)
	}
	want := plain.got[0]
	for _, n := range []*floodNode{b, d} {
		g := n.got[0]
		if !bytes.Equal(g.Body, want.Body) || g.From != want.From || g.Signed != want.Signed || !g.Signed || g.Sender != want.Sender {
			t.Fatalf("with the cache %+v, without %+v", g, want)
		}
	}
	b.got[0].Body[0] ^= 1
	if d.got[0].Body[0] != want.Body[0] {
		t.Fatal("two members share one body")
	}

	for i, change := range []func([]byte){
		func(f []byte) { f[1] = 0xf0 | f[1]&0x0f }, // the hop limit raised
		func(f []byte) { f[len(f)-40] ^= 1 },       // the ciphertext
	} {
		forged := bytes.Clone(frame)
		change(forged)
		e := newFloodNode(t, "e", shared)
		e.step(routing.JoinChannel{Key: key})
		e.receive(epoch, forged)
		if len(e.got) != 0 {
			t.Fatalf("change %d: a changed frame was delivered through the cache", i)
		}
		if c.adds != 1 {
			t.Fatalf("change %d: a frame that did not open entered the cache", i)
		}
	}
}
