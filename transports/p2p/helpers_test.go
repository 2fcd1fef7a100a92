package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"meshd.dev/meshd/protocol"
)

// Goroutines that outlive Close by design of a dependency, not of this
// package:
//   - zeroconf's Server.probe sleeps through its announcements (about 3.5 s
//     after Register) and has no way to be stopped.
//   - go-libp2p's package-level observed-address and DNS resolver caches
//     are not tied to a host (checked by name below when they show up).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/grandcat/zeroconf.(*Server).probe"),
	)
}

// testTimeout bounds every wait of a test.
const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testIdentity derives an identity from seed.
func testIdentity(t testing.TB, seed uint64) *protocol.Identity {
	t.Helper()
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	id, err := protocol.NewIdentity(rand.NewChaCha8(s))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testHostKey derives the host key that goes with a test identity (a key
// of its own, not the identity's signing key).
func testHostKey(t testing.TB, id *protocol.Identity) ed25519.PrivateKey {
	t.Helper()
	a := id.Address()
	seed := sha256.Sum256(append([]byte("meshd test host key"), a[:]...))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testPeerID is the peer ID of id's test host key.
func testPeerID(t testing.TB, id *protocol.Identity) peer.ID {
	t.Helper()
	p, err := hostPeerID(testHostKey(t, id).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testCert is a host certificate by id for its test host key, issued at
// issued for lifetime.
func testCert(t testing.TB, id *protocol.Identity, issued time.Time, lifetime time.Duration) []byte {
	t.Helper()
	iss := protocol.TimestampOf(issued)
	c, err := appendHostCert(nil, id, testHostKey(t, id).Public().(ed25519.PublicKey), iss, protocol.TimestampOf(iss.Time().Add(lifetime)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testHello is the hello a host with identity id and its test host key
// sends now.
func testHello(t testing.TB, id *protocol.Identity) []byte {
	t.Helper()
	b, err := appendHello(nil, id.Public(), testCert(t, id, time.Now(), HostCertLifetime))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newTestHost starts a host on 127.0.0.1 (TCP) with identity seed and
// closes it at the end of the test.
func newTestHost(t testing.TB, seed uint64, edit func(*Config)) *Host {
	t.Helper()
	id := testIdentity(t, seed)
	cfg := Config{
		Identity:    id,
		HostKey:     testHostKey(t, id),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DHTMode:     "server",
		Logger:      testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// nextEvent returns the next event of h, skipping none.
func nextEvent(t testing.TB, ctx context.Context, h *Host) Event {
	t.Helper()
	select {
	case ev, ok := <-h.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-ctx.Done():
		t.Fatalf("waiting for an event of %s: %v", h.ID(), ctx.Err())
	}
	return nil
}

// waitEvent returns the first event of type T, failing on any other.
func waitEvent[T Event](t testing.TB, ctx context.Context, h *Host) T {
	t.Helper()
	ev := nextEvent(t, ctx, h)
	e, ok := ev.(T)
	if !ok {
		var want T
		t.Fatalf("%s: got event %T %+v, want %T", h.ID(), ev, ev, want)
	}
	return e
}

// connectPair connects a to b and waits for LinkUp on both.
func connectPair(t testing.TB, ctx context.Context, a, b *Host) (LinkUp, LinkUp) {
	t.Helper()
	if _, err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	ua := waitEvent[LinkUp](t, ctx, a)
	ub := waitEvent[LinkUp](t, ctx, b)
	return ua, ub
}

// rawHost is a bare libp2p host with the test host key of a mesh
// identity, for speaking the link protocol by hand.
func rawHost(t testing.TB, id *protocol.Identity) host.Host {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(testHostKey(t, id))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableMetrics(),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// seedWhere returns the first seed from start whose peer ID satisfies ok.
func seedWhere(t testing.TB, start uint64, ok func(peer.ID) bool) uint64 {
	t.Helper()
	for s := start; s < start+1000; s++ {
		if ok(testPeerID(t, testIdentity(t, s))) {
			return s
		}
	}
	t.Fatal("no seed found")
	return 0
}
