package fapp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func testIssuer(t testing.TB, seed byte) *Issuer {
	t.Helper()
	is, err := NewIssuer(seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// testCredential issues a credential for the identity of seed, valid a
// year around testNow.
func testCredential(t testing.TB, is *Issuer, seed byte, serial uint64) *Credential {
	t.Helper()
	c, err := is.Issue(Credential{Serial: serial, Therapist: testIdentity(t, seed).Compact(),
		Berufsgruppe: PsychologischerPsychotherapeut, RegistryID: "1-20-1234567890",
		ValidFrom: testNow.AddDate(0, -6, 0), ValidTo: testNow.AddDate(0, 6, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCredentialVerify(t *testing.T) {
	is, other := testIssuer(t, 50), testIssuer(t, 51)
	trust := NewTrustStore(is.PublicKey())
	good := testCredential(t, is, 1, 7)
	if err := trust.Verify(good, testNow); err != nil {
		t.Fatal(err)
	}
	forged := *good
	forged.RegistryID = "1-20-0000000000"
	otherKeys := *good
	otherKeys.Therapist = testIdentity(t, 2).Compact()
	reissued := *testCredential(t, other, 1, 7)
	claimsTrusted := reissued
	claimsTrusted.Issuer = is.PublicKey().ID()
	cases := []struct {
		name string
		c    *Credential
		now  time.Time
		want error
	}{
		{"forged field", &forged, testNow, ErrBadSignature},
		{"keys swapped", &otherKeys, testNow, ErrBadSignature},
		{"untrusted issuer", &reissued, testNow, ErrUntrustedIssuer},
		{"untrusted issuer claiming a trusted ID", &claimsTrusted, testNow, ErrBadSignature},
		{"expired", good, good.ValidTo, ErrExpired},
		{"not yet valid", good, good.ValidFrom.Add(-time.Second), ErrNotYetValid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := trust.Verify(c.c, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	is, other := testIssuer(t, 50), testIssuer(t, 51)
	trust := NewTrustStore(is.PublicKey())
	c7, c8 := testCredential(t, is, 1, 7), testCredential(t, is, 2, 8)
	r1, err := is.Revoke(1, testNow, []uint64{9, 7, 7})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := r1.MarshalBinary()
	r1, err = ParseRevocation(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.ApplyRevocation(r1); err != nil {
		t.Fatal(err)
	}
	if err := trust.Verify(c7, testNow); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked credential: %v", err)
	}
	if err := trust.Verify(c8, testNow); err != nil {
		t.Fatalf("other credential: %v", err)
	}
	// An older or equal list cannot un-revoke.
	r0, _ := is.Revoke(1, testNow, nil)
	if err := trust.ApplyRevocation(r0); !errors.Is(err, ErrStale) {
		t.Fatalf("stale list: %v", err)
	}
	// A list by an untrusted issuer, or one forged under the trusted ID.
	ro, _ := other.Revoke(5, testNow, []uint64{8})
	if err := trust.ApplyRevocation(ro); !errors.Is(err, ErrUntrustedIssuer) {
		t.Fatalf("untrusted list: %v", err)
	}
	ro.Issuer = is.PublicKey().ID()
	if err := trust.ApplyRevocation(ro); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged list: %v", err)
	}
	if err := trust.Verify(c8, testNow); err != nil {
		t.Fatalf("after refused lists: %v", err)
	}
}

func TestCredentialEncoding(t *testing.T) {
	c := testCredential(t, testIssuer(t, 50), 1, 7)
	raw, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCredential(raw)
	if err != nil || *got != *c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"trailing", append(bytes.Clone(raw), 0), ErrTrailing},
		{"truncated", raw[:len(raw)-1], ErrTruncated},
		{"version", append([]byte{2}, raw[1:]...), ErrUnknownVersion},
		{"oversized", make([]byte, maxCredentialSize+1), ErrTooLarge},
	} {
		if _, err := ParseCredential(bad.raw); !errors.Is(err, bad.want) {
			t.Fatalf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	is := testIssuer(t, 50)
	for _, mut := range []func(*Credential){
		func(c *Credential) { c.RegistryID = "" },
		func(c *Credential) { c.RegistryID = string(make([]byte, MaxRegistryIDLen+1)) },
		func(c *Credential) { c.RegistryID = "a\x1bb" },
		func(c *Credential) { c.Berufsgruppe = 0 },
		func(c *Credential) { c.ValidTo = c.ValidFrom },
	} {
		bad := *c
		mut(&bad)
		if _, err := is.Issue(bad); err == nil {
			t.Fatalf("issued %+v", bad)
		}
	}
}

func TestIssuerKeyFile(t *testing.T) {
	is := testIssuer(t, 50)
	raw, _ := is.MarshalBinary()
	back, err := ParseIssuer(raw)
	if err != nil || back.PublicKey() != is.PublicKey() {
		t.Fatalf("round trip: %v", err)
	}
	raw[5] ^= 1
	if _, err := ParseIssuer(raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("damaged file: %v", err)
	}
	k, err := ParseIssuerKey(is.PublicKey().String())
	if err != nil || k != is.PublicKey() {
		t.Fatalf("key text: %v", err)
	}
	if _, err := ParseIssuerKey("abc"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad key text: %v", err)
	}
}

// testProfile returns a signed profile of the identity of seed with a
// credential from is, and its encoding.
func testProfile(t testing.TB, is *Issuer, seed byte, serial uint64) (*Profile, []byte) {
	t.Helper()
	p := &Profile{Sequence: 1, Issued: testNow, Name: "Dipl.-Psych. Erika Muster", Schwerpunkte: []string{"Angst", "Depression"},
		Credential: *testCredential(t, is, seed, serial)}
	raw, err := SignProfile(testIdentity(t, seed), p)
	if err != nil {
		t.Fatal(err)
	}
	return p, raw
}

func TestProfile(t *testing.T) {
	is := testIssuer(t, 50)
	p, raw := testProfile(t, is, 1, 7)
	got, err := ParseProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != p.Name || got.Credential != p.Credential || !got.Identity.Equal(p.Identity) {
		t.Fatalf("round trip: %+v", got)
	}
	ref, _ := got.Ref()
	if ref != ProfileRefOf(raw) {
		t.Fatal("Ref differs from ProfileRefOf")
	}
	t.Logf("profile: %d bytes (fetched once per therapist, cached)", len(raw))
	// A profile carrying someone else's credential is refused.
	bad := &Profile{Issued: testNow, Name: "X", Credential: *testCredential(t, is, 2, 8)}
	if _, err := SignProfile(testIdentity(t, 1), bad); !errors.Is(err, ErrMismatch) {
		t.Fatalf("foreign credential: %v", err)
	}
	// Tampering anywhere is refused (every 7th bit, the profile is large).
	for i := 0; i < len(raw)*8; i += 7 {
		c := bytes.Clone(raw)
		c[i/8] ^= 1 << (i % 8)
		if _, err := ParseProfile(c); err == nil {
			t.Fatalf("bit %d flipped: accepted", i)
		}
	}
	if _, err := ParseProfile(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("trailing: %v", err)
	}
}
