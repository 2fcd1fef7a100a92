package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"regexp"
	"testing"
)

func TestIdentityRoundTrip(t *testing.T) {
	id := testIdentity(t, 1)
	raw, err := id.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != PrivateIdentitySize {
		t.Fatalf("private identity is %d bytes, want %d", len(raw), PrivateIdentitySize)
	}
	back, err := ParseIdentity(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.Address() != id.Address() || !back.Public().Equal(id.Public()) {
		t.Fatal("parsed identity differs")
	}
	pub, err := id.Public().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != PublicIdentitySize {
		t.Fatalf("public identity is %d bytes, want %d", len(pub), PublicIdentitySize)
	}
	pback, err := ParsePublicIdentity(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !pback.Equal(id.Public()) || pback.Address() != id.Address() {
		t.Fatal("parsed public identity differs")
	}
}

func TestIdentityDeterministicAndDistinct(t *testing.T) {
	a, b, c := testIdentity(t, 1), testIdentity(t, 1), testIdentity(t, 2)
	if a.Address() != b.Address() {
		t.Fatal("same seed gave different addresses")
	}
	if a.Address() == c.Address() {
		t.Fatal("different seeds gave the same address")
	}
	if a.Compact().Address() != a.Address() {
		t.Fatal("compact identity derives another address")
	}
}

func TestParseIdentityRejects(t *testing.T) {
	raw, _ := testIdentity(t, 1).MarshalBinary()
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":     {nil, ErrTruncated},
		"truncated": {raw[:40], ErrTruncated},
		"too long":  {append(append([]byte{}, raw...), 0), ErrTooLarge},
		"version":   {append([]byte{2}, raw[1:]...), ErrUnknownKind},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseIdentity(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Any flipped bit in the seeds or checksum is caught by the checksum.
	flipEachBit(raw, map[int]bool{0: true}, func(i int, c []byte) {
		if _, err := ParseIdentity(c); !errors.Is(err, ErrMalformed) {
			t.Fatalf("bit %d: got %v, want ErrMalformed", i, err)
		}
	})
}

func TestParsePublicIdentityRejects(t *testing.T) {
	pub, _ := testIdentity(t, 1).Public().MarshalBinary()
	for _, n := range []int{0, 1, 33, len(pub) - 1} {
		if _, err := ParsePublicIdentity(pub[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("len %d: got %v", n, err)
		}
	}
	if _, err := ParsePublicIdentity(append(append([]byte{}, pub...), 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long: got %v", err)
	}
	bad := append([]byte{}, pub...)
	bad[0] = 9
	if _, err := ParsePublicIdentity(bad); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("version: got %v", err)
	}
	// An ML-KEM key with out-of-range coefficients fails the encapsulation
	// key check.
	bad = append([]byte{}, pub...)
	for i := 33; i < 33+384; i++ {
		bad[i] = 0xff
	}
	if _, err := ParsePublicIdentity(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad KEM key: got %v", err)
	}
}

func TestAddressText(t *testing.T) {
	a := testIdentity(t, 3).Address()
	s := a.String()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(s) {
		t.Fatalf("address %q is not 32 lowercase hex", s)
	}
	back, err := ParseAddress(s)
	if err != nil || back != a {
		t.Fatalf("ParseAddress(%q) = %v, %v", s, back, err)
	}
	for _, bad := range []string{"", "abc", s[:31], s + "0", s[:31] + "g"} {
		if _, err := ParseAddress(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseAddress(%q): got %v", bad, err)
		}
	}
	var u Address
	if err := u.UnmarshalText([]byte(s)); err != nil || u != a {
		t.Fatal("UnmarshalText")
	}
}

func TestFingerprintAndSafetyNumber(t *testing.T) {
	a, b := testIdentity(t, 1).Compact(), testIdentity(t, 2).Compact()
	fp := a.Fingerprint()
	if !regexp.MustCompile(`^(\d{5} ){5}\d{5}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q: want six groups of five digits", fp)
	}
	if fp == b.Fingerprint() {
		t.Fatal("two identities share a fingerprint")
	}
	sn := SafetyNumber(a, b)
	if sn != SafetyNumber(b, a) {
		t.Fatal("safety number depends on argument order")
	}
	if !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(sn) {
		t.Fatalf("safety number %q: want twelve groups of five digits", sn)
	}
	// A different KEM key (same signing key) changes the fingerprint.
	c := a
	c.KEMKeyHash[0] ^= 1
	if c.Fingerprint() == fp {
		t.Fatal("fingerprint ignores the KEM key")
	}
}

func TestTimestamp(t *testing.T) {
	ts := TimestampOf(testNow)
	if !ts.Time().Equal(testNow) {
		t.Fatalf("round trip: %v", ts.Time())
	}
	if TimestampOf(testNow.AddDate(-100, 0, 0)) != 0 {
		t.Fatal("pre-epoch times must clamp to 0")
	}
	if TimestampOf(testNow.AddDate(200, 0, 0)) != Timestamp(^uint32(0)) {
		t.Fatal("times past 2106 must clamp")
	}
	_ = bytes.Equal
}

func TestExternalSignature(t *testing.T) {
	id := testIdentity(t, 1)
	msg := []byte("record")
	sig := id.Sign("dht-record/v1", msg)
	c := id.Compact()
	if !c.Verify("dht-record/v1", msg, sig) {
		t.Fatal("signature does not verify")
	}
	if c.Verify("dht-record/v2", msg, sig) {
		t.Fatal("signature verifies under another label")
	}
	if c.verify("dht-record/v1", msg, sig) {
		t.Fatal("external signature verifies without the meshd-ext/ prefix")
	}
	if !bytes.Equal(id.SigningKey().Public().(ed25519.PublicKey), c.SigningKey[:]) {
		t.Fatal("SigningKey does not match the compact identity")
	}
}
