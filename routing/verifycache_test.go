package routing

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestAnnounceFreshMatchesVerify: the freshness check an engine does on a
// cache hit accepts and rejects exactly what protocol.Announce.Verify does
// for a correctly signed announce, at every boundary.
func TestAnnounceFreshMatchesVerify(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a, err := protocol.NewAnnounce(id, protocol.AnnounceOptions{Sequence: 1, Timestamp: protocol.TimestampOf(t0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []protocol.AnnouncePolicy{{}, {MaxSkew: time.Minute}, {MaxAge: time.Hour, MaxSkew: 30 * time.Second}} {
		for _, now := range []time.Time{
			t0, t0.Add(-10 * time.Minute), t0.Add(-10*time.Minute - time.Nanosecond), t0.Add(-time.Minute - time.Second),
			t0.Add(-time.Minute), t0.Add(24 * time.Hour), t0.Add(24*time.Hour + time.Nanosecond), t0.Add(time.Hour),
			t0.Add(time.Hour + time.Nanosecond), t0.Add(-31 * time.Second),
		} {
			want := a.Verify(now, p)
			got := announceFresh(a, now, p)
			for _, target := range []error{protocol.ErrExpired, protocol.ErrFromFuture} {
				if errors.Is(got, target) != errors.Is(want, target) {
					t.Errorf("policy %+v, now %v: Verify %v, announceFresh %v", p, now.Sub(t0), want, got)
				}
			}
			if (got == nil) != (want == nil) {
				t.Errorf("policy %+v, now %v: Verify %v, announceFresh %v", p, now.Sub(t0), want, got)
			}
		}
	}
}

type mapCache map[[32]byte]bool

func (m mapCache) Verified(d [32]byte) bool { return m[d] }
func (m mapCache) AddVerified(d [32]byte)   { m[d] = true }

// TestAnnounceDigest: the digest ignores the hop count and nothing else.
func TestAnnounceDigest(t *testing.T) {
	id, err := protocol.NewIdentity(rand.NewChaCha8([32]byte{2}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := protocol.NewAnnounce(id, protocol.AnnounceOptions{Sequence: 7, Timestamp: 1000})
	if err != nil {
		t.Fatal(err)
	}
	d0, ok := announceDigest(a)
	if !ok {
		t.Fatal("no digest")
	}
	b := *a
	b.HopCount = 9
	if d, _ := announceDigest(&b); d != d0 {
		t.Error("the hop count changed the digest")
	}
	for name, change := range map[string]func(*protocol.Announce){
		"sequence":  func(x *protocol.Announce) { x.Sequence++ },
		"timestamp": func(x *protocol.Announce) { x.Timestamp++ },
		"signature": func(x *protocol.Announce) { x.Signature[0] ^= 1 },
		"kem key":   func(x *protocol.Announce) { x.KEMKey = make([]byte, protocol.KEMPublicKeySize) },
	} {
		c := *a
		change(&c)
		if d, _ := announceDigest(&c); d == d0 {
			t.Errorf("changing the %s kept the digest", name)
		}
	}
	// A tampered announce is never taken from the cache: it has another
	// digest, and it does not verify.
	cache := mapCache{}
	e := &Engine{now: time.Unix(1000, 0), cfg: Config{VerifyCache: cache, ClockSkew: 10 * time.Minute}}
	if err := e.verifyAnnounce(a); err != nil || len(cache) != 1 {
		t.Fatalf("verify %v, cache %d", err, len(cache))
	}
	bad := *a
	bad.Capabilities ^= protocol.CapRelay
	if err := e.verifyAnnounce(&bad); !errors.Is(err, protocol.ErrBadSignature) || len(cache) != 1 {
		t.Fatalf("tampered announce: %v, cache %d", err, len(cache))
	}
	// A cached announce is still judged by the engine's clock.
	e.now = time.Unix(1000, 0).Add(25 * time.Hour)
	if err := e.verifyAnnounce(a); !errors.Is(err, protocol.ErrExpired) {
		t.Fatalf("stale cached announce: %v", err)
	}
}
