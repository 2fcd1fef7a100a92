package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// A hello with an all-zero Ed25519 or X25519 key is refused at parse
// (ErrBadHello, malformed), before any certificate check: today's parse
// accepts the key and fails only on the certificate (ErrIdentityMismatch).
func TestHelloDegenerateKeys(t *testing.T) {
	id := testIdentity(t, 70)
	good := testHello(t, id)
	remote := testPeerID(t, id)
	kemEnd := 1 + protocol.PublicIdentitySize
	for name, zero := range map[string][2]int{
		"Ed25519 signing key":        {2, 2 + protocol.SigningKeySize},
		"X25519 part of the KEM key": {kemEnd - 32, kemEnd},
	} {
		b := append([]byte(nil), good...)
		clear(b[zero[0]:zero[1]])
		_, err := parseHello(b, remote, time.Now())
		if !errors.Is(err, ErrBadHello) || !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s all zero: %v, want ErrBadHello and protocol.ErrMalformed", name, err)
		}
	}
	if _, err := parseHello(good, remote, time.Now()); err != nil {
		t.Fatalf("good hello: %v", err)
	}
}

// identify reports meshd's agent and protocol version (today's: agent
// "meshd.dev/meshd@" and an empty protocol version).
func TestIdentifyAgent(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 71, func(c *Config) { c.AgentVersion = "meshd/v9.9.9" })
	b := newTestHost(t, 72, nil)
	connectPair(t, ctx, b, a)
	agent, err := b.host.Peerstore().Get(a.ID(), "AgentVersion")
	if err != nil || agent != "meshd/v9.9.9" {
		t.Errorf("agent %v (%v), want meshd/v9.9.9", agent, err)
	}
	pv, err := b.host.Peerstore().Get(a.ID(), "ProtocolVersion")
	if err != nil || pv != IdentifyProtocolVersion {
		t.Errorf("protocol version %v (%v), want %s", pv, err, IdentifyProtocolVersion)
	}
}

// A plain libp2p host (no meshd protocols) gets a connection but no link:
// WaitLink says why (ErrNotMeshd with its agent) instead of "connected".
func TestWaitLinkPlainLibp2pPeer(t *testing.T) {
	ctx := testContext(t)
	h := newTestHost(t, 73, nil)
	raw := rawHost(t, testIdentity(t, 74))
	ai := peer.AddrInfo{ID: raw.ID(), Addrs: raw.Addrs()}
	if err := h.ConnectInfo(ctx, ai); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := h.WaitLink(wctx, raw.ID())
	if !errors.Is(err, ErrNotMeshd) || !strings.Contains(err.Error(), "agent") {
		t.Fatalf("WaitLink to a plain libp2p host: %v, want ErrNotMeshd with its agent", err)
	}
	// A meshd peer: the link's address.
	b := newTestHost(t, 75, nil)
	if _, err := h.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	addr, err := h.WaitLink(ctx, b.ID())
	if err != nil || addr != b.cfg.Identity.Address() {
		t.Fatalf("WaitLink to meshd: %v, %v", addr, err)
	}
}

// Records the DHT validator refuses are counted (today they vanish with a
// bare stream reset).
func TestRefusedRecordsCounted(t *testing.T) {
	h := newTestHost(t, 76, func(c *Config) { c.Redial.Off = true })
	key := RecordKey(testIdentity(t, 77).Address())
	for range 3 {
		if err := h.dht.Validator.Validate(key, []byte("not a record")); err == nil {
			t.Fatal("junk record accepted")
		}
	}
	if n := h.RecordsRefused(); n != 3 {
		t.Fatalf("RecordsRefused %d, want 3", n)
	}
}

// An address paired with the ID of a peer that is connected already is
// still dialled: one that reaches nothing is an error (today's Connect
// returns nil without dialling).
func TestConnectConnectedPeerDialsAddress(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 78, nil)
	b := newTestHost(t, 79, nil)
	connectPair(t, ctx, a, b)
	dead := newTestHost(t, 80, func(c *Config) { c.Redial.Off = true })
	deadAddr := dead.host.Addrs()[0].String()
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(ctx, deadAddr+"/p2p/"+b.ID().String()); err == nil {
		t.Fatal("connect to a dead address of a connected peer succeeded")
	}
	// B's real address still works.
	if _, err := a.Connect(ctx, b.Addrs()[0]); err != nil {
		t.Fatalf("connect to the connected peer's real address: %v", err)
	}
}
