package p2p

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"meshd.dev/meshd/protocol"
)

// relayedPair starts a relay-mode host r and hosts a and c; c holds a
// reservation on r and a connects to c only through r's circuit. Neither
// a nor c listens once started (as hosts behind NAT: they dial out, nobody
// dials them), so hole punching cannot connect them directly. It returns
// once both have a link with each other. cGuard is c's guard.
func relayedPair(t *testing.T, ctx context.Context, cGuard Guard, limits RelayLimits) (a, c *Host, upA, upC LinkUp) {
	t.Helper()
	r := newTestHost(t, 81, func(c *Config) { c.Relay, c.RelayLimits = true, limits })
	waitProtocol(t, ctx, r, "/libp2p/circuit/relay/0.2.0/hop")
	rAI := peer.AddrInfo{ID: r.ID(), Addrs: r.Libp2p().Addrs()}
	a = newTestHost(t, 82, nil)
	c = newTestHost(t, 83, func(cfg *Config) { cfg.Guard = cGuard })
	stopListening(t, a)
	stopListening(t, c)
	if err := c.Libp2p().Connect(ctx, rAI); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, c.Libp2p(), rAI); err != nil {
		t.Fatalf("reservation on the relay: %v", err)
	}
	var caddrs []ma.Multiaddr
	for _, ra := range rAI.Addrs {
		caddrs = append(caddrs, ra.Encapsulate(ma.StringCast("/p2p/"+r.ID().String()+"/p2p-circuit")))
	}
	if err := a.ConnectInfo(ctx, peer.AddrInfo{ID: c.ID(), Addrs: caddrs}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	if _, ok := cGuard.(*denyGuard); ok {
		return a, c, LinkUp{}, LinkUp{} // no link is to come up
	}
	upA = waitLinkWith[LinkUp](t, ctx, a, c.ID())
	upC = waitLinkWith[LinkUp](t, ctx, c, a.ID())
	return a, c, upA, upC
}

// waitLinkWith returns h's next event of type T about peer p, skipping
// events about other peers (the relay is a meshd peer too) but failing on
// another event about p.
func waitLinkWith[T Event](t *testing.T, ctx context.Context, h *Host, p peer.ID) T {
	t.Helper()
	for {
		ev := nextEvent(t, ctx, h)
		var of peer.ID
		switch e := ev.(type) {
		case LinkUp:
			of = e.Peer
		case LinkDown:
			of = e.Peer
		case Frame:
			of = e.Peer
		}
		if of != p {
			continue
		}
		e, ok := ev.(T)
		if !ok {
			var want T
			t.Fatalf("%s: got %T %+v about %s, want %T", h.ID(), ev, ev, p, want)
		}
		return e
	}
}

// stopListening closes h's listeners: h can dial out, nobody can dial it.
func stopListening(t *testing.T, h *Host) {
	t.Helper()
	n, ok := h.Libp2p().Network().(interface{ ListenClose(...ma.Multiaddr) })
	if !ok {
		t.Fatal("the libp2p network cannot close its listeners")
	}
	for _, a := range h.Libp2p().Network().ListenAddresses() {
		if !isCircuit(a) { // the relay client's listener stays
			n.ListenClose(a)
		}
	}
}

// linkLimited reports whether h's link to p runs over a relayed
// connection.
func linkLimited(t *testing.T, h *Host, p peer.ID) bool {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[p]
	if l == nil {
		t.Fatalf("%s has no link to %s", h.ID(), p)
	}
	return l.limited()
}

// TestLinkOverRelayedConnection: two hosts that reach each other only
// through a relay's circuit get a meshd link over the limited connection
// and exchange frames; when a direct connection comes up, the link moves
// to it. (Before relayed.go, links were never opened on limited
// connections: no LinkUp came.)
func TestLinkOverRelayedConnection(t *testing.T) {
	ctx := testContext(t)
	a, c, _, _ := relayedPair(t, ctx, nil, RelayLimits{})
	for _, conn := range a.Libp2p().Network().ConnsToPeer(c.ID()) {
		if !conn.Stat().Limited {
			t.Fatalf("a has a direct connection to c: %s", conn.RemoteMultiaddr())
		}
	}
	if !linkLimited(t, a, c.ID()) || !linkLimited(t, c, a.ID()) {
		t.Fatal("the link does not run on the relayed connection")
	}
	if err := a.Send(ctx, c.ID(), []byte("over the relay")); err != nil {
		t.Fatal(err)
	}
	if f := waitLinkWith[Frame](t, ctx, c, a.ID()); string(f.Data) != "over the relay" {
		t.Fatalf("c got %q", f.Data)
	}
	if !peerRelayed(a, c.ID()) {
		t.Error("Peers does not show c as relayed")
	}

	// A direct connection takes the link over.
	if err := c.Libp2p().Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	if err := a.ConnectInfo(ctx, peer.AddrInfo{ID: c.ID(), Addrs: c.Libp2p().Network().ListenAddresses()}); err != nil {
		t.Fatal(err)
	}
	waitLinkWith[LinkDown](t, ctx, a, c.ID())
	waitLinkWith[LinkUp](t, ctx, a, c.ID())
	if linkLimited(t, a, c.ID()) {
		t.Fatal("a's link stayed on the relayed connection although a direct one is up")
	}
	if err := a.Send(ctx, c.ID(), []byte("direct")); err != nil {
		t.Fatal(err)
	}
	for {
		ev := nextEvent(t, ctx, c)
		if f, ok := ev.(Frame); ok && f.Peer == a.ID() {
			if string(f.Data) != "direct" {
				t.Fatalf("c got %q", f.Data)
			}
			break
		}
	}
	if linkLimited(t, c, a.ID()) {
		t.Fatal("c's link stayed on the relayed connection")
	}
}

func peerRelayed(h *Host, p peer.ID) bool {
	for _, pi := range h.Peers() {
		if pi.ID == p {
			return pi.Relayed && pi.Link
		}
	}
	return false
}

// frameGuard allows every peer and link and refuses frames after the
// first allowed ones.
type frameGuard struct {
	allowed int64
	frames  atomic.Int64
}

var errFlood = errors.New("test: too many frames")

func (g *frameGuard) AllowPeer(peer.ID) bool                    { return true }
func (g *frameGuard) AllowLink(peer.ID, protocol.Address) error { return nil }
func (g *frameGuard) HandshakeFailed(peer.ID, error) bool       { return true }
func (g *frameGuard) Frame(_ peer.ID, _ protocol.Address, _ []byte) error {
	if g.frames.Add(1) > g.allowed {
		return errFlood
	}
	return nil
}

// TestRelayedLinkGuard: a peer that floods a link over a relayed
// connection meets the same inbound guard as on a direct one: every frame
// is vetted, and a refused frame ends the link and closes the (relayed)
// connection.
func TestRelayedLinkGuard(t *testing.T) {
	ctx := testContext(t)
	g := &frameGuard{allowed: 3}
	a, c, _, _ := relayedPair(t, ctx, g, RelayLimits{})
	for i := range 10 {
		if err := a.Send(ctx, c.ID(), []byte{byte(i)}); err != nil {
			break // the link went down under the flood
		}
	}
	for range 3 {
		waitLinkWith[Frame](t, ctx, c, a.ID())
	}
	down := waitLinkWith[LinkDown](t, ctx, c, a.ID())
	if !errors.Is(down.Err, ErrRefusedPeer) || !errors.Is(down.Err, errFlood) {
		t.Fatalf("link down with %v, want the guard's refusal", down.Err)
	}
	if got := g.frames.Load(); got != 4 {
		t.Errorf("guard saw %d frames, want 4 (3 allowed, the 4th refused)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Libp2p().Network().Connectedness(a.ID()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(c.Libp2p().Network().ConnsToPeer(a.ID())); n != 0 {
		t.Errorf("c still has %d connections to the flooding peer", n)
	}
}

// TestRelayLimitsConfig: impossible relay limits are refused with a clear
// error; zero means the defaults.
func TestRelayLimitsConfig(t *testing.T) {
	l, err := RelayLimits{}.withDefaults()
	if err != nil || l.Duration != DefaultRelayDuration || l.Data != DefaultRelayData ||
		l.Reservations != DefaultRelayReservations || l.CircuitsPerPeer != DefaultRelayCircuitsPerPeer {
		t.Fatalf("defaults: %+v, %v", l, err)
	}
	for _, bad := range []RelayLimits{
		{Duration: time.Second},
		{Duration: -time.Minute},
		{Data: 1000},
		{Data: -1},
		{Reservations: -1},
		{CircuitsPerPeer: -5},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", bad, err)
		}
	}
	id := testIdentity(t, 90)
	_, err = New(context.Background(), Config{Identity: id, HostKey: testHostKey(t, id), Relay: true,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, RelayLimits: RelayLimits{Data: 10}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("New with a 10-byte relay limit: %v, want ErrConfig", err)
	}
}

// TestRelayedLinkReopens: when the relay ends a relayed connection at its
// data limit, the link goes down and comes back through the relay (the
// redialer dials the circuit the link ran through). Before, the redialer
// dialled only direct addresses: the link stayed down.
func TestRelayedLinkReopens(t *testing.T) {
	ctx := testContext(t)
	a, c, _, _ := relayedPair(t, ctx, nil, RelayLimits{Data: minRelayData})
	big := make([]byte, 48<<10)
	for range 2 { // 96 KiB: over the relay's 64 KiB
		if err := a.Send(ctx, c.ID(), big); err != nil {
			break
		}
	}
	waitLinkWith[LinkDown](t, ctx, a, c.ID())
	waitLinkWith[LinkUp](t, ctx, a, c.ID())
	if !linkLimited(t, a, c.ID()) {
		t.Fatal("the link came back, but not through the relay (no direct path exists)")
	}
	if err := a.Send(ctx, c.ID(), []byte("again")); err != nil {
		t.Fatal(err)
	}
	for { // c also sees the link go down and up, and the big frames
		if f, ok := nextEvent(t, ctx, c).(Frame); ok && string(f.Data) == "again" {
			break
		}
	}
}

// negotiated is a stream whose protocol is selected lazily (multistream)
// on first use.
type negotiated struct {
	network.Stream
	rw msmux.LazyConn
}

func (n negotiated) Read(b []byte) (int, error)  { return n.rw.Read(b) }
func (n negotiated) Write(b []byte) (int, error) { return n.rw.Write(b) }

// TestRelayedStreamKeepsDirectLink: with the link on a direct connection,
// a link stream opened over the relayed connection that is still up (a
// peer moving the link onto the relay, where the relay's limit cuts it)
// is refused after the hellos, and the link on the direct connection
// stays as it was. Before, the newer stream replaced the link (which the
// direct connection then took back, a flap of two LinkDowns).
func TestRelayedStreamKeepsDirectLink(t *testing.T) {
	ctx := testContext(t)
	a, c, _, _ := relayedPair(t, ctx, nil, RelayLimits{})
	if err := c.Libp2p().Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	if err := a.ConnectInfo(ctx, peer.AddrInfo{ID: c.ID(), Addrs: c.Libp2p().Network().ListenAddresses()}); err != nil {
		t.Fatal(err)
	}
	waitLinkWith[LinkDown](t, ctx, a, c.ID())
	waitLinkWith[LinkUp](t, ctx, a, c.ID())
	opener, other := a, c
	if !a.opensTo(c.ID()) {
		opener, other = c, a
	}
	var relayed network.Conn
	for _, conn := range opener.Libp2p().Network().ConnsToPeer(other.ID()) {
		if conn.Stat().Limited {
			relayed = conn
		}
	}
	if relayed == nil {
		t.Fatal("the relayed connection closed when the direct one came up")
	}
	s, err := relayed.NewStream(network.WithAllowLimitedConn(ctx, "test"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	other.mu.Lock()
	before := other.links[opener.ID()]
	other.mu.Unlock()
	ns := negotiated{Stream: s, rw: msmux.NewMSSelect(s, LinkProtocol)}
	hello, err := opener.currentHello()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Write(hello); err != nil {
		t.Fatal(err)
	}
	// Refused: the peer resets the stream right after its hello (the reset
	// may overtake the hello). The deadline only bounds the wait where it
	// wrongly keeps the stream as the link.
	_ = s.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = readHello(ns, other.ID(), time.Now())
	if err == nil {
		_, err = ns.Read(make([]byte, 1))
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer kept a link stream on the relayed connection (read: %v)", err)
	}
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("read %v, want the peer's reset", err)
	}
	other.mu.Lock()
	after := other.links[opener.ID()]
	other.mu.Unlock()
	if after != before {
		t.Fatal("the stream on the relayed connection replaced the link on the direct one")
	}
	if linkLimited(t, other, opener.ID()) {
		t.Fatal("the link moved to the relayed connection")
	}
}

// denyGuard refuses one peer, as the daemon's deny list or cool-down does
// (AllowPeer and AllowLink), and closes refused on the first refusal.
type denyGuard struct {
	deny    atomic.Pointer[peer.ID]
	refused chan struct{}
	once    sync.Once
}

func (g *denyGuard) refuse(p peer.ID) bool {
	if d := g.deny.Load(); d != nil && *d == p {
		g.once.Do(func() { close(g.refused) })
		return true
	}
	return false
}
func (g *denyGuard) AllowPeer(p peer.ID) bool { return !g.refuse(p) }
func (g *denyGuard) AllowLink(p peer.ID, _ protocol.Address) error {
	if g.refuse(p) {
		return errFlood
	}
	return nil
}
func (g *denyGuard) Frame(peer.ID, protocol.Address, []byte) error { return nil }
func (g *denyGuard) HandshakeFailed(peer.ID, error) bool           { return false }

// TestRelayedLinkDenied: a peer the guard refuses (deny list, cool-down)
// gets no link over a relayed connection either (the gater refuses the
// connection; TestGaterRefusesRelayedPeer).
func TestRelayedLinkDenied(t *testing.T) {
	ctx := testContext(t)
	g := &denyGuard{refused: make(chan struct{})}
	denied := testPeerID(t, testIdentity(t, 82)) // relayedPair's a
	g.deny.Store(&denied)
	_, c, _, _ := relayedPair(t, ctx, g, RelayLimits{})
	select {
	case <-g.refused:
	case <-ctx.Done():
		t.Fatal("the guard was never asked about the relayed peer")
	}
	c.mu.Lock()
	l := c.links[denied]
	c.mu.Unlock()
	if l != nil && !l.isClosed() {
		t.Fatal("the denied peer has a link over the relayed connection")
	}
}
