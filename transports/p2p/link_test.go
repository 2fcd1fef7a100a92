package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pprotocol "github.com/libp2p/go-libp2p/core/protocol"

	"meshd.dev/meshd/protocol"
)

func TestLinkUpAndFramesBothWays(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 1, nil)
	b := newTestHost(t, 2, nil)
	ua, ub := connectPair(t, ctx, a, b)

	if ua.Peer != b.ID() || ub.Peer != a.ID() {
		t.Fatalf("LinkUp peers %s, %s; want %s, %s", ua.Peer, ub.Peer, b.ID(), a.ID())
	}
	if ua.Address != b.cfg.Identity.Address() || ub.Address != a.cfg.Identity.Address() {
		t.Fatalf("LinkUp addresses %s, %s; want %s, %s", ua.Address, ub.Address, b.cfg.Identity.Address(), a.cfg.Identity.Address())
	}
	if !ua.Identity.Equal(b.cfg.Identity.Public()) || ua.Compact != b.cfg.Identity.Compact() {
		t.Fatal("LinkUp on a does not carry b's identity")
	}
	if !ub.Identity.Equal(a.cfg.Identity.Public()) {
		t.Fatal("LinkUp on b does not carry a's identity")
	}
	if ua.Outbound == ub.Outbound || ua.Outbound != lessPeer(a.ID(), b.ID()) {
		t.Fatalf("Outbound a=%v b=%v; the smaller peer ID opens", ua.Outbound, ub.Outbound)
	}

	const n = 200
	for i := range n {
		if err := a.Send(ctx, b.ID(), fmt.Appendf(nil, "a->b %d %s", i, strings.Repeat("x", i*37))); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(ctx, a.ID(), fmt.Appendf(nil, "b->a %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte{0xab}, MaxFrameSize)
	if err := a.Send(ctx, b.ID(), big); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		f := waitEvent[Frame](t, ctx, b)
		if want := fmt.Sprintf("a->b %d %s", i, strings.Repeat("x", i*37)); string(f.Data) != want || f.Peer != a.ID() || f.Address != a.cfg.Identity.Address() {
			t.Fatalf("b got frame %d %.20q from %s, want %.20q from %s", i, f.Data, f.Peer, want, a.ID())
		}
		g := waitEvent[Frame](t, ctx, a)
		if want := fmt.Sprintf("b->a %d", i); string(g.Data) != want {
			t.Fatalf("a got frame %q, want %q", g.Data, want)
		}
	}
	if f := waitEvent[Frame](t, ctx, b); !bytes.Equal(f.Data, big) {
		t.Fatalf("largest frame arrived with %d bytes", len(f.Data))
	}

	ps := a.Peers()
	if len(ps) != 1 || ps[0].ID != b.ID() || !ps[0].Link || ps[0].Address != b.cfg.Identity.Address() || ps[0].Relayed || len(ps[0].Addrs) == 0 || ps[0].Since.IsZero() {
		t.Fatalf("a.Peers() = %+v", ps)
	}
	if ps[0].Direction != "outbound" {
		t.Fatalf("a dialled b, direction %q", ps[0].Direction)
	}
}

func TestSendErrors(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 3, nil)
	b := newTestHost(t, 4, nil)
	if err := a.Send(ctx, b.ID(), []byte("x")); !errors.Is(err, ErrNoLink) {
		t.Fatalf("send without link: %v, want ErrNoLink", err)
	}
	connectPair(t, ctx, a, b)
	if err := a.Send(ctx, b.ID(), make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("oversized send: %v, want ErrFrameSize", err)
	}
	if err := a.Send(ctx, b.ID(), nil); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("empty send: %v, want ErrFrameSize", err)
	}
	// The link survives refused sends.
	if err := a.Send(ctx, b.ID(), []byte("still up")); err != nil {
		t.Fatal(err)
	}
	if f := waitEvent[Frame](t, ctx, b); string(f.Data) != "still up" {
		t.Fatalf("got %q", f.Data)
	}
}

func TestDisconnectLinkDown(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 5, nil)
	b := newTestHost(t, 6, nil)
	connectPair(t, ctx, a, b)
	if err := a.Disconnect(b.ID()); err != nil {
		t.Fatal(err)
	}
	da := waitEvent[LinkDown](t, ctx, a)
	db := waitEvent[LinkDown](t, ctx, b)
	if da.Peer != b.ID() || db.Peer != a.ID() || da.Address != b.cfg.Identity.Address() {
		t.Fatalf("LinkDown %+v, %+v", da, db)
	}
	// Right after LinkDown a send fails, unless a link is already back:
	// the DHT re-dials peers that leave its routing table, and the opener
	// reopens the link on a connection that survived. Either is correct;
	// the second must show as LinkUp. (Dialling back by hand here races
	// with those automatic dials, whose Noise handshakes then fail now and
	// then, so this test does not reconnect; restarts and reconnects are
	// covered by the daemon's end-to-end test.)
	err := a.Send(ctx, b.ID(), []byte("x"))
	switch {
	case err == nil:
		waitEvent[LinkUp](t, ctx, a)
	case !errors.Is(err, ErrNoLink):
		t.Fatalf("send after LinkDown: %v, want ErrNoLink", err)
	}
}

func TestPeerCloseLinkDown(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 7, nil)
	b := newTestHost(t, 8, nil)
	connectPair(t, ctx, a, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := waitEvent[LinkDown](t, ctx, a); d.Peer != b.ID() {
		t.Fatalf("LinkDown for %s", d.Peer)
	}
	// b's channel is closed after Close.
	for range b.Events() {
	}
	if err := b.Send(ctx, a.ID(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send on closed host: %v", err)
	}
}

// openRaw connects raw to target and opens a link stream.
func openRaw(t *testing.T, ctx context.Context, target *Host, seed uint64) (network.Stream, *bufio.Reader) {
	t.Helper()
	s, err := connectRaw(t, ctx, target, seed).NewStream(ctx, target.ID(), LinkProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s, bufio.NewReader(s)
}

// connectRaw connects a bare libp2p host with identity seed to target.
func connectRaw(t *testing.T, ctx context.Context, target *Host, seed uint64) host.Host {
	t.Helper()
	raw := rawHost(t, testIdentity(t, seed))
	if err := raw.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return raw
}

// expectReset reads from s until it fails. The target's hello may arrive
// before the reset or be discarded by it; nothing else may.
func expectReset(t *testing.T, r *bufio.Reader) {
	t.Helper()
	n, err := io.Copy(io.Discard, r)
	if err == nil {
		t.Fatal("stream ended cleanly; want a reset")
	}
	if n > HelloSize {
		t.Fatalf("read %d bytes after a bad hello", n)
	}
}

func TestHandshakeRejections(t *testing.T) {
	ctx := testContext(t)
	target := newTestHost(t, 10, nil)
	smaller := func(p peer.ID) bool { return lessPeer(p, target.ID()) }
	good := seedWhere(t, 100, smaller)
	other := testIdentity(t, 99)

	helloOf := func(seed uint64) []byte { return testHello(t, testIdentity(t, seed)) }
	goodID := testIdentity(t, good)
	// withCert is good's identity with a certificate made by signer for
	// the host key of keyOf.
	withCert := func(signer, keyOf *protocol.Identity) []byte {
		iss := protocol.TimestampOf(time.Now())
		c, err := appendHostCert(nil, signer, testHostKey(t, keyOf).Public().(ed25519.PublicKey), iss, protocol.TimestampOf(iss.Time().Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := appendHello(nil, goodID.Public(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	expired, err := appendHello(nil, goodID.Public(), testCert(t, goodID, time.Now().Add(-2*time.Hour), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		seed  uint64 // raw host key
		hello []byte
	}{
		{"another node's hello (certifies another peer)", good, testHello(t, other)},
		{"certificate for another peer ID", good, withCert(goodID, other)},
		{"certificate signed by another identity", good, withCert(other, goodID)},
		{"expired certificate", good, expired},
		{"version 1 hello", good, append([]byte{1}, helloOf(good)[1:]...)},
		{"bad identity version", good, func() []byte { b := helloOf(good); b[1] = 9; return b }()},
		{"short hello then close", good, helloOf(good)[:100]},
		{"opened by the larger peer ID", seedWhere(t, 200, func(p peer.ID) bool { return !smaller(p) }), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, r := openRaw(t, ctx, target, c.seed)
			hello := c.hello
			if hello == nil {
				hello = helloOf(c.seed)
			}
			if _, err := s.Write(hello); err != nil {
				t.Fatal(err)
			}
			if len(hello) < HelloSize {
				s.CloseWrite()
			}
			expectReset(t, r)
		})
	}

	// None of that produced an event: the first event is the LinkUp of a
	// correct handshake.
	s, r := openRaw(t, ctx, target, good)
	if _, err := s.Write(helloOf(good)); err != nil {
		t.Fatal(err)
	}
	var hello [HelloSize]byte
	if _, err := io.ReadFull(r, hello[:]); err != nil {
		t.Fatal(err)
	}
	up := waitEvent[LinkUp](t, ctx, target)
	if up.Peer != testPeerID(t, testIdentity(t, good)) || up.Outbound {
		t.Fatalf("LinkUp %+v", up)
	}

	// A hostile length prefix resets the stream without a large
	// allocation, and the link goes down with ErrFrameSize.
	if _, err := s.Write(binary.AppendUvarint(nil, 1<<40)); err != nil {
		t.Fatal(err)
	}
	down := waitEvent[LinkDown](t, ctx, target)
	if !errors.Is(down.Err, ErrFrameSize) {
		t.Fatalf("LinkDown.Err = %v, want ErrFrameSize", down.Err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("stream open after an oversized frame")
	}
}

func TestOversizedFrameFromPeer(t *testing.T) {
	ctx := testContext(t)
	target := newTestHost(t, 11, nil)
	seed := seedWhere(t, 300, func(p peer.ID) bool { return lessPeer(p, target.ID()) })
	s, r := openRaw(t, ctx, target, seed)
	s.Write(testHello(t, testIdentity(t, seed)))
	io.ReadFull(r, make([]byte, HelloSize))
	waitEvent[LinkUp](t, ctx, target)
	frame := appendFrame(nil, []byte("fine"))
	frame = binary.AppendUvarint(frame, MaxFrameSize+1)
	frame = append(frame, make([]byte, 1000)...)
	if _, err := s.Write(frame); err != nil {
		t.Fatal(err)
	}
	if f := waitEvent[Frame](t, ctx, target); string(f.Data) != "fine" {
		t.Fatalf("got %q", f.Data)
	}
	if d := waitEvent[LinkDown](t, ctx, target); !errors.Is(d.Err, ErrFrameSize) {
		t.Fatalf("LinkDown.Err = %v", d.Err)
	}
}

func TestSendBoundedWhenPeerStopsReading(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 12, nil)
	b := newTestHost(t, 13, nil)
	connectPair(t, ctx, a, b)
	// b's events are never read: its reader, then flow control, then a's
	// writer and queue fill up. Send must give up with the context.
	frame := make([]byte, MaxFrameSize)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var err error
	for err == nil {
		err = a.Send(sctx, b.ID(), frame)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want DeadlineExceeded", err)
	}
	// Close of b, whose events channel is full, does not deadlock.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectErrors(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 14, nil)
	for _, s := range []string{"", "not a multiaddr", "/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1/p2p/notapeerid"} {
		if _, err := a.Connect(ctx, s); !errors.Is(err, ErrBadMultiaddr) {
			t.Errorf("Connect(%q) = %v, want ErrBadMultiaddr", s, err)
		}
	}
	if _, err := a.Connect(ctx, a.Addrs()[0]); err == nil {
		t.Error("Connect to self succeeded")
	}
}

func TestAddrsAndInfo(t *testing.T) {
	a := newTestHost(t, 15, nil)
	addrs := a.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no addrs")
	}
	for _, s := range addrs {
		if !strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(s, "/p2p/"+a.ID().String()) {
			t.Errorf("addr %q", s)
		}
	}
	if r := a.Reachability(); r != "unknown" {
		t.Errorf("Reachability = %q", r)
	}
	if m := a.DHTMode(); m != "server" {
		t.Errorf("DHTMode = %q", m)
	}
	c := newTestHost(t, 16, func(c *Config) { c.DHTMode = "client" })
	if m := c.DHTMode(); m != "client" {
		t.Errorf("client DHTMode = %q", m)
	}
}

func TestConfigErrors(t *testing.T) {
	id := testIdentity(t, 1)
	hk := testHostKey(t, id)
	cases := []Config{
		{},
		{Identity: id},
		{Identity: id, HostKey: id.SigningKey()},
		{Identity: id, HostKey: hk[:31]},
		{Identity: id, HostKey: hk, DHTMode: "sometimes"},
		{Identity: id, HostKey: hk, Relay: true, DHTMode: "client"},
		{Identity: id, HostKey: hk, ConnLow: 10, ConnHigh: 5},
		{Identity: id, HostKey: hk, ListenAddrs: []string{"/ip4/127.0.0.1/tcp"}},
		{Identity: id, HostKey: hk, Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001"}},
	}
	for i, c := range cases {
		if h, err := New(context.Background(), c); err == nil {
			h.Close()
			t.Errorf("case %d: New accepted %+v", i, c)
		}
	}
}

func TestLinkOverQUIC(t *testing.T) {
	ctx := testContext(t)
	quic := func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip6/::1/udp/0/quic-v1"} }
	a := newTestHost(t, 50, quic)
	b := newTestHost(t, 51, quic)
	if !strings.Contains(b.Addrs()[0], "/quic-v1/p2p/") {
		t.Fatalf("addrs %v", b.Addrs())
	}
	connectPair(t, ctx, a, b)
	if err := a.Send(ctx, b.ID(), []byte("over quic")); err != nil {
		t.Fatal(err)
	}
	if f := waitEvent[Frame](t, ctx, b); string(f.Data) != "over quic" {
		t.Fatalf("got %q", f.Data)
	}
	if ps := b.Peers(); len(ps) != 1 || !strings.Contains(ps[0].Addrs[0], "quic-v1") || ps[0].Direction != "inbound" {
		t.Fatalf("peers %+v", ps)
	}
}

// TestSimultaneousConnect: both sides dial at once; each still sees exactly
// one LinkUp, and the next events are frames, not a second link.
func TestSimultaneousConnect(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 52, nil)
	b := newTestHost(t, 53, nil)
	errs := make(chan error, 2)
	go func() { _, err := a.Connect(ctx, b.Addrs()[0]); errs <- err }()
	go func() { _, err := b.Connect(ctx, a.Addrs()[0]); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitEvent[LinkUp](t, ctx, a)
	waitEvent[LinkUp](t, ctx, b)
	for i := range 3 {
		msg := fmt.Appendf(nil, "%d", i)
		if err := a.Send(ctx, b.ID(), msg); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(ctx, a.ID(), msg); err != nil {
			t.Fatal(err)
		}
		if f := waitEvent[Frame](t, ctx, b); !bytes.Equal(f.Data, msg) {
			t.Fatalf("b got %q", f.Data)
		}
		if f := waitEvent[Frame](t, ctx, a); !bytes.Equal(f.Data, msg) {
			t.Fatalf("a got %q", f.Data)
		}
	}
}

// TestNewerStreamReplacesLink: a second link stream from the opener (say it
// saw the old connection die first) replaces the first: LinkDown, LinkUp,
// and frames flow on the new one.
func TestNewerStreamReplacesLink(t *testing.T) {
	ctx := testContext(t)
	target := newTestHost(t, 54, nil)
	rp := newRawPeer(t, ctx, target, 400)
	seed := rp.seed
	open := func() (network.Stream, *bufio.Reader) { return rp.open(t, ctx, target) }
	_, r1 := open()
	waitEvent[LinkUp](t, ctx, target)
	s2, r2 := open()
	if d := waitEvent[LinkDown](t, ctx, target); !errors.Is(d.Err, errReplaced) {
		t.Fatalf("LinkDown.Err = %v", d.Err)
	}
	waitEvent[LinkUp](t, ctx, target)
	if _, err := io.Copy(io.Discard, r1); err == nil {
		t.Fatal("replaced stream ended cleanly, want reset")
	}
	if err := target.Send(ctx, testPeerID(t, testIdentity(t, seed)), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(r2); err != nil || string(f) != "new" {
		t.Fatalf("frame on the new stream: %q, %v", f, err)
	}
	if _, err := s2.Write(appendFrame(nil, []byte("back"))); err != nil {
		t.Fatal(err)
	}
	if f := waitEvent[Frame](t, ctx, target); string(f.Data) != "back" {
		t.Fatalf("got %q", f.Data)
	}
}

func TestRelayMode(t *testing.T) {
	ctx := testContext(t)
	r := newTestHost(t, 55, func(c *Config) { c.Relay = true; c.DHTMode = "" })
	if got := r.Reachability(); got != "public" {
		t.Errorf("relay Reachability = %q", got)
	}
	if got := r.DHTMode(); got != "server" {
		t.Errorf("relay DHTMode = %q", got)
	}
	// The circuit relay v2 service comes up (asynchronously, on the
	// reachability event).
	waitProtocol(t, ctx, r, "/libp2p/circuit/relay/0.2.0/hop")
	a := newTestHost(t, 56, nil)
	connectPair(t, ctx, a, r)
}

// TestRelayCandidates: the AutoRelay peer source offers connected peers
// that run the relay service, and only those.
func TestRelayCandidates(t *testing.T) {
	ctx := testContext(t)
	r := newTestHost(t, 57, func(c *Config) { c.Relay = true })
	waitProtocol(t, ctx, r, "/libp2p/circuit/relay/0.2.0/hop")
	o := newTestHost(t, 59, nil)
	p := newTestHost(t, 58, nil)
	sub, err := p.Libp2p().EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	connectPair(t, ctx, p, r)
	connectPair(t, ctx, p, o)
	for seen := map[peer.ID]bool{}; !seen[r.ID()] || !seen[o.ID()]; {
		select {
		case e := <-sub.Out():
			seen[e.(event.EvtPeerIdentificationCompleted).Peer] = true
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	lh := p.Libp2p()
	var got []peer.AddrInfo
	for ai := range relayCandidates(&lh, nil, 4) {
		got = append(got, ai)
	}
	if len(got) != 1 || got[0].ID != r.ID() || len(got[0].Addrs) == 0 {
		t.Fatalf("relay candidates %v, want only %s", got, r.ID())
	}
	if n := len(relayCandidates(nil, nil, 4)); n != 0 {
		t.Fatalf("%d candidates before the host exists", n)
	}
}

// waitProtocol waits until h handles proto.
func waitProtocol(t *testing.T, ctx context.Context, h *Host, proto string) {
	t.Helper()
	sub, err := h.Libp2p().EventBus().Subscribe(new(event.EvtLocalProtocolsUpdated))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for !slices.Contains(h.Libp2p().Mux().Protocols(), libp2pprotocol.ID(proto)) {
		select {
		case <-sub.Out():
		case <-ctx.Done():
			t.Fatalf("%s never started: %v", proto, ctx.Err())
		}
	}
}

// TestLinkReplacementsAreLimited: a peer may replace its link with a newer
// stream only maxReplacements times per replaceWindow; a further stream is
// refused and the current link stays up.
func TestLinkReplacementsAreLimited(t *testing.T) {
	ctx := testContext(t)
	target := newTestHost(t, 56, nil)
	rp := newRawPeer(t, ctx, target, 500)
	seed := rp.seed
	open := func() (network.Stream, *bufio.Reader) { return rp.open(t, ctx, target) }
	open()
	waitEvent[LinkUp](t, ctx, target)
	var last *bufio.Reader
	for range maxReplacements {
		_, last = open()
		waitEvent[LinkDown](t, ctx, target)
		waitEvent[LinkUp](t, ctx, target)
	}
	// The target answers the hello and then resets the stream.
	expectReset(t, bufio.NewReader(rp.stream(t, ctx, target)))
	// The link from the last allowed replacement still works.
	if err := target.Send(ctx, testPeerID(t, testIdentity(t, seed)), []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(last); err != nil || string(f) != "still here" {
		t.Fatalf("frame on the kept link: %q, %v", f, err)
	}
}

// rawPeer is a bare libp2p host, connected to target, whose peer ID sorts
// before target's, so it is the side that opens links.
type rawPeer struct {
	seed  uint64
	host  host.Host
	hello []byte
}

// newRawPeer searches identity seeds from firstSeed for such a peer.
func newRawPeer(t *testing.T, ctx context.Context, target *Host, firstSeed uint64) *rawPeer {
	t.Helper()
	seed := seedWhere(t, firstSeed, func(p peer.ID) bool { return lessPeer(p, target.ID()) })
	return &rawPeer{seed: seed, host: connectRaw(t, ctx, target, seed), hello: testHello(t, testIdentity(t, seed))}
}

// stream opens a link stream to target and sends the hello.
func (r *rawPeer) stream(t *testing.T, ctx context.Context, target *Host) network.Stream {
	t.Helper()
	s, err := r.host.NewStream(ctx, target.ID(), LinkProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	if _, err := s.Write(r.hello); err != nil {
		t.Fatal(err)
	}
	return s
}

// open opens a link stream by hand: it sends the hello and reads target's.
// A stream target's resource manager refused before any handshake (its
// limit of two link streams per peer, while the link just replaced still
// releases its stream on a loaded machine: CI under -race once) is opened
// again, a bounded number of times: the link code never saw it.
func (r *rawPeer) open(t *testing.T, ctx context.Context, target *Host) (network.Stream, *bufio.Reader) {
	t.Helper()
	for try := 0; ; try++ {
		s := r.stream(t, ctx, target)
		br := bufio.NewReader(s)
		_, err := io.ReadFull(br, make([]byte, HelloSize))
		if err == nil {
			return s, br
		}
		var se *network.StreamError
		if try < 20 && errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamResourceLimitExceeded {
			continue
		}
		t.Fatal(err)
	}
}
