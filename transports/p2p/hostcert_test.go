package p2p

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// The hello binds the mesh identity to the libp2p peer only through the
// host certificate: each way of presenting someone else's binding is
// refused with ErrIdentityMismatch, and says why.
func TestParseHelloCertificate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id, other := testIdentity(t, 1), testIdentity(t, 2)
	remote := testPeerID(t, id)
	hello := func(pub *protocol.Identity, cert []byte) []byte {
		t.Helper()
		b, err := appendHello(nil, pub.Public(), cert)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	certBy := func(signer, keyOf *protocol.Identity, issued time.Time, life time.Duration) []byte {
		t.Helper()
		iss := protocol.TimestampOf(issued)
		c, err := appendHostCert(nil, signer, testHostKey(t, keyOf).Public().(ed25519.PublicKey), iss, protocol.TimestampOf(iss.Time().Add(life)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := hello(id, certBy(id, id, now, HostCertLifetime))
	if got, err := parseHello(good, remote, now); err != nil || !got.Equal(id.Public()) {
		t.Fatalf("good hello: %v", err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name  string
		hello []byte
		want  error
	}{
		{"certificate for another peer ID", hello(id, certBy(id, other, now, HostCertLifetime)), ErrIdentityMismatch},
		{"certificate signed by another identity", hello(id, certBy(other, id, now, HostCertLifetime)), protocol.ErrBadSignature},
		{"another node's whole hello", hello(other, certBy(other, other, now, HostCertLifetime)), ErrIdentityMismatch},
		{"identity swapped, certificate kept", hello(other, certBy(id, id, now, HostCertLifetime)), protocol.ErrBadSignature},
		{"signature damaged", flipped, protocol.ErrBadSignature},
		{"expired", hello(id, certBy(id, id, now.Add(-2*time.Hour), time.Hour)), protocol.ErrExpired},
		{"lifetime over the limit", hello(id, certBy(id, id, now, MaxHostCertLifetime+time.Second)), protocol.ErrMalformed},
		{"expires before issue", hello(id, certBy(id, id, now, -time.Second)), protocol.ErrMalformed},
		{"version 1", append([]byte{1}, good[1:]...), ErrBadHello},
		{"short", good[:HelloSize-1], ErrBadHello},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseHello(c.hello, remote, now)
			if !errors.Is(err, c.want) {
				t.Fatalf("parseHello = %v, want %v", err, c.want)
			}
			if c.want != ErrBadHello && !errors.Is(err, ErrIdentityMismatch) {
				t.Fatalf("parseHello = %v, want it to wrap ErrIdentityMismatch", err)
			}
		})
	}
}

// A certificate is signed by the identity key under its own label: the
// same signature does not verify as any other identity-signed object, and
// a DHT record signature does not verify as a certificate.
func TestHostCertDomainSeparated(t *testing.T) {
	id := testIdentity(t, 1)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := testHostKey(t, id).Public().(ed25519.PublicKey)
	p, err := hostPeerID(key)
	if err != nil {
		t.Fatal(err)
	}
	iss, exp := protocol.TimestampOf(now), protocol.TimestampOf(now.Add(time.Hour))
	msg := hostCertSigned(p, iss, exp)
	forged := append(append([]byte(nil), key...), msg[len(p):]...)
	forged = append(forged, id.Sign(recordSignLabel, msg)...)
	if _, err := parseHostCert(forged, id.Compact(), now); !errors.Is(err, protocol.ErrBadSignature) {
		t.Fatalf("a record-label signature passed as a certificate: %v", err)
	}
}

// The host signs a fresh certificate when the current one is half spent,
// so a long-running node never sends an expired one.
func TestHelloRenewsCertificate(t *testing.T) {
	start := time.Now()
	var clock atomic.Int64 // read by the host's goroutines too
	clock.Store(start.UnixNano())
	h := newTestHost(t, 40, func(c *Config) { c.Now = func() time.Time { return time.Unix(0, clock.Load()) } })
	first, err := h.currentHello()
	if err != nil {
		t.Fatal(err)
	}
	clock.Store(start.Add(HostCertLifetime/2 - time.Minute).UnixNano())
	if again, _ := h.currentHello(); !bytes.Equal(again, first) {
		t.Fatal("certificate renewed before half its lifetime")
	}
	clock.Store(start.Add(HostCertLifetime/2 + time.Minute).UnixNano())
	renewed, err := h.currentHello()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed, first) {
		t.Fatal("certificate not renewed after half its lifetime")
	}
	late := start.Add(HostCertLifetime + time.Minute)
	if _, err := parseHello(first, h.ID(), late); !errors.Is(err, protocol.ErrExpired) {
		t.Fatalf("first hello at the end of its lifetime: %v", err)
	}
	if _, err := parseHello(renewed, h.ID(), late); err != nil {
		t.Fatalf("renewed hello: %v", err)
	}
}

// The host key and the identity key are different keys, and the peer ID
// is the host key's.
func TestHostKeyIsNotIdentityKey(t *testing.T) {
	h := newTestHost(t, 41, nil)
	id := h.cfg.Identity
	own := id.Compact().SigningKey
	ownID, err := hostPeerID(ed25519.PublicKey(own[:]))
	if err != nil {
		t.Fatal(err)
	}
	if h.ID() == ownID {
		t.Fatal("the peer ID is the identity key's")
	}
	if h.ID() != testPeerID(t, id) {
		t.Fatalf("peer ID %s, want the host key's %s", h.ID(), testPeerID(t, id))
	}
	if err := checkHostKey(id.SigningKey(), id); !errors.Is(err, ErrHostKey) {
		t.Fatalf("identity key accepted as host key: %v", err)
	}
}

// TestHelloVector pins the hello's bytes (identity seed 1, its test host
// key, issued 2026-03-01 12:00 UTC for HostCertLifetime): a change of the
// layout, the label or the signed bytes changes the digest, and old and
// new hosts would no longer link. If the change is meant, bump
// linkVersion and LinkProtocol, and put the new digest here.
func TestHelloVector(t *testing.T) {
	id := testIdentity(t, 1)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := appendHello(nil, id.Public(), testCert(t, id, now, HostCertLifetime))
	if err != nil {
		t.Fatal(err)
	}
	const want = "0894c4db5a1666fc955692d2575fdd9895e931a30208362f1caa53813240b21e"
	if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
		t.Fatalf("hello digest %s, want %s\ncertificate %x", got, want, b[len(b)-HostCertSize:])
	}
}
