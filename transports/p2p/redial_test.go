package p2p

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestRedialBackoff(t *testing.T) {
	c := RedialConfig{Base: time.Second, Max: 16 * time.Second}.withDefaults()
	for _, tc := range []struct {
		attempt  int
		r        float64
		min, max time.Duration
	}{
		{0, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{0, 0.999, 500 * time.Millisecond, time.Second},
		{1, 0, time.Second, time.Second},
		{3, 0.5, 6 * time.Second, 6 * time.Second},
		{4, 0, 8 * time.Second, 8 * time.Second},
		{5, 0, 8 * time.Second, 8 * time.Second},
		{1000, 0.999, 8 * time.Second, 16 * time.Second},
	} {
		d := c.backoff(tc.attempt, tc.r)
		if d < tc.min || d > tc.max {
			t.Errorf("backoff(%d, %v) = %v, want %v..%v", tc.attempt, tc.r, d, tc.min, tc.max)
		}
	}
}

func TestKnownPeersBounded(t *testing.T) {
	h := newTestHost(t, 40, func(c *Config) { c.Redial.Off = true })
	now := time.Unix(1000, 0)
	for i := range MaxKnownPeers + 5 {
		p := testPeerID(t, testIdentity(t, uint64(1000+i)))
		h.redial.linkUp(p, nil, now.Add(time.Duration(i)*time.Second))
		h.redial.linkDown(p, now.Add(time.Duration(i)*time.Second))
	}
	if n := len(h.KnownPeers()); n != MaxKnownPeers {
		t.Fatalf("%d known peers, want %d", n, MaxKnownPeers)
	}
	first := testPeerID(t, testIdentity(t, 1000))
	for _, ai := range h.KnownPeers() {
		if ai.ID == first {
			t.Fatal("the peer linked longest ago was kept")
		}
	}
}

// restartOnPort starts a host with identity seed listening on addr.
func restartOnPort(t *testing.T, seed uint64, addr string, known []peer.AddrInfo) *Host {
	return newTestHost(t, seed, func(c *Config) {
		c.ListenAddrs = []string{addr}
		c.KnownPeers = known
	})
}

// A peer that restarts (on the same port, knowing nobody) is redialled by
// the side that stayed up; one that restarts on a new port dials the
// peers it remembers. Today's host dials nobody after a restart.
func TestRedialAfterRestart(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 41, nil)
	bID := testIdentity(t, 42)
	b := newTestHost(t, 42, nil)
	connectPair(t, ctx, a, b)
	port := b.host.Addrs()[0].String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent[LinkDown](t, ctx, a)

	// Same port, no known peers: a must redial.
	b2 := restartOnPort(t, 42, port, nil)
	ua := waitEvent[LinkUp](t, ctx, a)
	ub := waitEvent[LinkUp](t, ctx, b2)
	if ua.Address != bID.Address() || ub.Peer != a.ID() {
		t.Fatalf("after restart: %+v / %+v", ua, ub)
	}
	known := b2.KnownPeers()
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent[LinkDown](t, ctx, a)

	// New port: b3 dials what b2 remembered; a learns the new address.
	b3 := restartOnPort(t, 42, "/ip4/127.0.0.1/tcp/0", known)
	if ua := waitEvent[LinkUp](t, ctx, a); ua.Peer != b3.ID() {
		t.Fatalf("after restart on a new port: %+v", ua)
	}
	waitEvent[LinkUp](t, ctx, b3)
}

// blackhole is a TCP proxy that can stop forwarding while keeping the
// connections open: to both ends the peer is silent, as after a power cut
// or a partition.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go b.serve()
	return b
}

func (b *blackhole) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		d, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, d)
		b.mu.Unlock()
		go b.pipe(c, d)
		go b.pipe(d, c)
	}
}

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		b.mu.Lock()
		cut := b.cut
		b.mu.Unlock()
		if cut {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (b *blackhole) partition() {
	b.mu.Lock()
	b.cut = true
	b.mu.Unlock()
}

// A link whose peer went silent goes down within the keepalive timeout (plus
// one ping period), not after the tens of seconds TCP and yamux take.
func TestKeepaliveDetectsDeadLink(t *testing.T) {
	ctx := testContext(t)
	off := func(c *Config) { c.Redial.Off = true }
	a := newTestHost(t, 43, off)
	b := newTestHost(t, 44, off)
	_, port, err := net.SplitHostPort(mustTCPAddr(t, b))
	if err != nil {
		t.Fatal(err)
	}
	bh := newBlackhole(t, "127.0.0.1:"+port)
	_, bhPort, _ := net.SplitHostPort(bh.ln.Addr().String())
	if _, err := a.Connect(ctx, "/ip4/127.0.0.1/tcp/"+bhPort+"/p2p/"+b.ID().String()); err != nil {
		t.Fatal(err)
	}
	waitEvent[LinkUp](t, ctx, a)
	waitEvent[LinkUp](t, ctx, b)
	bh.partition()
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, DefaultKeepaliveTimeout+DefaultKeepaliveInterval+2*time.Second)
	defer cancel()
	d := waitEvent[LinkDown](t, dctx, a)
	if !errors.Is(d.Err, ErrKeepalive) {
		t.Fatalf("LinkDown after %v: %v, want ErrKeepalive", time.Since(start), d.Err)
	}
	t.Logf("dead link detected after %v", time.Since(start).Round(time.Millisecond))
}

func mustTCPAddr(t *testing.T, h *Host) string {
	t.Helper()
	for _, a := range h.host.Addrs() {
		if ip, err := a.ValueForProtocol(ma.P_IP4); err == nil {
			if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				return net.JoinHostPort(ip, p)
			}
		}
	}
	t.Fatal("no TCP address")
	return ""
}

// Attack: a peer that makes MaxKnownPeers fresh identities and links up
// with each must not push a peer whose link is up, or a bootstrap peer,
// out of the redial set (the good peer would never be redialled after its
// link drops; the node would be left linked to the attacker only).
func TestKnownPeersEvictionSparesLinkedAndBootstrap(t *testing.T) {
	boot := testPeerID(t, testIdentity(t, 2000))
	bootAddr := ma.StringCast("/ip4/127.0.0.1/tcp/9")
	h := newTestHost(t, 41, func(c *Config) {
		c.Redial.Off = true
		c.Bootstrap = []string{bootAddr.String() + "/p2p/" + boot.String()}
	})
	now := time.Unix(1000, 0)
	good := testPeerID(t, testIdentity(t, 2001))
	h.redial.linkUp(good, []ma.Multiaddr{bootAddr}, now)
	for i := range 2 * MaxKnownPeers {
		p := testPeerID(t, testIdentity(t, uint64(3000+i)))
		at := now.Add(time.Duration(i+1) * time.Second)
		h.redial.linkUp(p, nil, at)
		h.redial.linkDown(p, at)
	}
	known := map[peer.ID]bool{}
	for _, ai := range h.KnownPeers() {
		known[ai.ID] = true
	}
	if len(known) > MaxKnownPeers {
		t.Fatalf("%d known peers, bound %d", len(known), MaxKnownPeers)
	}
	if !known[good] {
		t.Error("a peer whose link is up was evicted by newer peers")
	}
	if !known[boot] {
		t.Error("a bootstrap peer was evicted by newer peers")
	}
}

// Attack: dead entries (a peer that linked once and vanished, or one that
// named unreachable addresses) were redialled every DefaultRedialMax
// forever. A peer unreachable for ForgetAfter (default 24 h) is
// forgotten; a bootstrap peer never is.
func TestRedialForgetsUnreachablePeers(t *testing.T) {
	boot := testPeerID(t, testIdentity(t, 2100))
	closed := "/ip4/127.0.0.1/tcp/9"
	h := newTestHost(t, 43, func(c *Config) {
		c.Redial.Off = true
		c.Bootstrap = []string{closed + "/p2p/" + boot.String()}
	})
	t0 := time.Unix(1000, 0)
	gone := testPeerID(t, testIdentity(t, 2101))
	h.redial.linkUp(gone, []ma.Multiaddr{ma.StringCast(closed)}, t0)
	h.redial.linkDown(gone, t0)
	known := func() map[peer.ID]bool {
		m := map[peer.ID]bool{}
		for _, ai := range h.KnownPeers() {
			m[ai.ID] = true
		}
		return m
	}
	h.redial.dialDue(t0.Add(24*time.Hour - time.Second))
	if !known()[gone] {
		t.Fatal("a peer unreachable for less than a day was forgotten")
	}
	h.redial.dialDue(t0.Add(24 * time.Hour))
	if k := known(); k[gone] || !k[boot] {
		t.Fatalf("after a day unreachable: known %v, want the bootstrap peer only", k)
	}
}
