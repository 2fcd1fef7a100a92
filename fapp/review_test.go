package fapp

import (
	"errors"
	"testing"
	"time"
)

// TestAttackPruneReverifiesSignatures: the daemon calls Prune every second.
// It verified every cached credential's Ed25519 signature each time, so a
// relay's 40,000 profiles, or an attacker's flood of cheap profiles naming
// a trusted issuer with a bad signature (each one cached with its
// announce), cost tens of thousands of signature checks per second on the
// node loop. Prune must re-check only what time and revocation lists
// change. The test sees a signature check in Prune by damaging the cached
// credential's signature after it was verified: a Prune that checks the
// signature again uncredentials the therapist.
func TestAttackPruneReverifiesSignatures(t *testing.T) {
	is := testIssuer(t, 50)
	trust := NewTrustStore(is.PublicKey())
	x := NewIndex(IndexConfig{Trust: trust})
	keys := credentialedAnnounces(t, x, is, 1, mustPLZ(t, "10437"))
	x.profiles[keys[0]].p.Credential.Signature[0] ^= 1
	x.Prune(testNow)
	if err := x.CredentialStatus(keys[0]); err != nil {
		t.Fatalf("Prune verified the signature again: %v", err)
	}
	// What Prune must still see: a revocation and the end of validity.
	r, _ := is.Revoke(1, testNow, []uint64{100})
	if err := trust.ApplyRevocation(r); err != nil {
		t.Fatal(err)
	}
	x.Prune(testNow)
	if err := x.CredentialStatus(keys[0]); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after the revocation: %v", err)
	}
	// A forged credential naming the trusted issuer stays refused.
	p, _ := testProfile(t, is, 101, 101)
	p.Credential.Signature[5] ^= 1
	a := plainAnnounce(keyOf(t, 101), mustPLZ(t, "10437"), 1, testNow.Add(time.Hour))
	a.Profile, _ = p.Ref()
	if err := x.Add(a, testNow); err != nil {
		t.Fatal(err)
	}
	if err := x.AddProfile(p, testNow); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		x.Prune(testNow)
		if err := x.CredentialStatus(a.Therapist); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("forged credential: %v", err)
		}
	}
	// An untrusted issuer is looked up again: trusting it later counts.
	other := testIssuer(t, 51)
	p2, _ := testProfile(t, other, 102, 1)
	a2 := plainAnnounce(keyOf(t, 102), mustPLZ(t, "10437"), 1, testNow.Add(time.Hour))
	a2.Profile, _ = p2.Ref()
	x.Add(a2, testNow)
	x.AddProfile(p2, testNow)
	if err := x.CredentialStatus(a2.Therapist); !errors.Is(err, ErrUntrustedIssuer) {
		t.Fatalf("untrusted: %v", err)
	}
	trust.Trust(other.PublicKey())
	x.Prune(testNow)
	if err := x.CredentialStatus(a2.Therapist); err != nil {
		t.Fatalf("after trusting the issuer: %v", err)
	}
}

// BenchmarkPrune measures Index.Prune (the daemon calls it every second)
// over 200 credentialed profiles; ns/op divided by 200 is
// the cost per cached profile.
func BenchmarkPrune(b *testing.B) {
	is := testIssuer(b, 50)
	x := NewIndex(IndexConfig{Trust: NewTrustStore(is.PublicKey())})
	for i := range 200 {
		seed := byte(i)
		p, _ := testProfile(b, is, seed, uint64(seed))
		a := plainAnnounce(keyOf(b, seed), mustPLZ(b, "10437"), 1, testNow.Add(time.Hour))
		a.Profile, _ = p.Ref()
		if err := x.Add(a, testNow); err != nil {
			b.Fatal(err)
		}
		if err := x.AddProfile(p, testNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		x.Prune(testNow)
	}
}

// TestAttackPendingChurnLocksOutNewcomer: in a region full of
// uncredentialed announces a credentialed newcomer gets in only if its
// profile waits in the pending cache when its announce arrives. The cache
// dropped the oldest profile first, so a neighbour sending a stream of
// junk profiles (fresh keys, no valid credential) between the two pushed
// the newcomer's verified profile out and kept it locked out. Unverified
// profiles must go first.
func TestAttackPendingChurnLocksOutNewcomer(t *testing.T) {
	is := testIssuer(t, 50)
	x := NewIndex(IndexConfig{MaxPerRegion: 5, MaxPendingProfiles: 4, Trust: NewTrustStore(is.PublicKey())})
	plz := mustPLZ(t, "10437")
	for i := range 5 {
		if err := x.Add(plainAnnounce(TherapistKey{0xee, byte(i)}, plz, 1, testNow.Add(20*time.Hour)), testNow); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := testProfile(t, is, 100, 1)
	if err := x.AddProfile(p, testNow); err != nil {
		t.Fatal(err)
	}
	junkIssuer := testIssuer(t, 51)
	for seed := byte(110); seed < 120; seed++ {
		j, _ := testProfile(t, junkIssuer, seed, uint64(seed))
		if err := x.AddProfile(j, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if st := x.Stats(); st.PendingProfiles != 4 {
		t.Fatalf("pending cache not bounded: %+v", st)
	}
	a := plainAnnounce(keyOf(t, 100), plz, 1, testNow.Add(time.Hour))
	a.Profile, _ = p.Ref()
	if err := x.Add(a, testNow); err != nil {
		t.Fatalf("credentialed newcomer after the churn: %v", err)
	}
}
