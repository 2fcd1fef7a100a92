package protocol

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func testAnnounce(t testing.TB, full bool) (*Announce, *Identity) {
	t.Helper()
	id := testIdentity(t, 4)
	opts := AnnounceOptions{
		Capabilities: CapRelay | CapMailbox | 0x8000, // an unknown bit travels along
		Sequence:     42,
		Timestamp:    TimestampOf(testNow),
	}
	if full {
		opts.IncludeKEMKey = true
		opts.Hints = &Hints{
			PeerID: bytes.Repeat([]byte{0x12}, 38),
			Addrs:  [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x10, 0x01}, {0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
		}
	}
	a, err := NewAnnounce(id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, id
}

func TestAnnounceRoundTrip(t *testing.T) {
	for _, full := range []bool{false, true} {
		a, id := testAnnounce(t, full)
		raw, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != a.Size() {
			t.Fatalf("Size() %d, encoded %d", a.Size(), len(raw))
		}
		got, err := ParseAnnounce(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Verify(testNow, AnnouncePolicy{}); err != nil {
			t.Fatal(err)
		}
		if got.Address() != id.Address() || got.Sequence != 42 || got.Capabilities != a.Capabilities {
			t.Fatalf("decoded %+v", got)
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, raw) {
			t.Fatal("re-encoding differs")
		}
		if full {
			pub, err := got.PublicIdentity()
			if err != nil || !pub.Equal(id.Public()) {
				t.Fatalf("PublicIdentity: %v", err)
			}
		} else if _, err := got.PublicIdentity(); err == nil {
			t.Fatal("PublicIdentity without a KEM key")
		}
	}
}

func TestAnnounceCompactFitsLoRa(t *testing.T) {
	a, _ := testAnnounce(t, false)
	raw, _ := a.MarshalBinary()
	if len(raw) != AnnounceCompactSize || len(raw) > 255 {
		t.Fatalf("compact announce is %d bytes; must be %d and fit a 255-byte LoRa frame", len(raw), AnnounceCompactSize)
	}
}

func TestAnnounceTamper(t *testing.T) {
	for _, full := range []bool{false, true} {
		a, _ := testAnnounce(t, full)
		raw, _ := a.MarshalBinary()
		flipEachBit(raw, map[int]bool{1: true}, func(i int, c []byte) {
			got, err := ParseAnnounce(c)
			if err != nil {
				return
			}
			if err := got.Verify(testNow, AnnouncePolicy{}); err == nil {
				t.Fatalf("full=%v: bit %d flipped and the announce verifies", full, i)
			}
		})
		if err := IncrementAnnounceHops(raw); err != nil {
			t.Fatal(err)
		}
		got, _ := ParseAnnounce(raw)
		if got.HopCount != 1 || got.Verify(testNow, AnnouncePolicy{}) != nil {
			t.Fatal("hop increment broke the announce")
		}
	}
}

func TestAnnounceFreshness(t *testing.T) {
	a, _ := testAnnounce(t, false)
	if err := a.Verify(testNow.Add(25*time.Hour), AnnouncePolicy{}); !errors.Is(err, ErrExpired) {
		t.Fatalf("old: %v", err)
	}
	if err := a.Verify(testNow.Add(-time.Hour), AnnouncePolicy{}); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("future: %v", err)
	}
	if err := a.Verify(testNow.Add(2*time.Hour), AnnouncePolicy{MaxAge: time.Hour}); !errors.Is(err, ErrExpired) {
		t.Fatalf("custom max age: %v", err)
	}
}

func TestAnnounceForeignKEMKey(t *testing.T) {
	a, _ := testAnnounce(t, true)
	a.KEMKey = testIdentity(t, 5).Public().KEMPublicKey()
	if err := a.Verify(testNow, AnnouncePolicy{}); !errors.Is(err, ErrAddressMismatch) {
		t.Fatalf("substituted KEM key: %v", err)
	}
}

func TestParseAnnounceRejects(t *testing.T) {
	a, _ := testAnnounce(t, true)
	raw, _ := a.MarshalBinary()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":         {nil, ErrTruncated},
		"wrong kind":    {mod(func(b []byte) []byte { b[0] = byte(KindEnvelope); return b }), ErrUnknownKind},
		"unknown flags": {mod(func(b []byte) []byte { b[2] |= 0x40; return b }), ErrMalformed},
		"trailing":      {mod(func(b []byte) []byte { return append(b, 1) }), ErrTrailing},
		"oversized":     {make([]byte, MaxAnnounceSize+1), ErrTooLarge},
		"peer ID too long": {mod(func(b []byte) []byte {
			b[AnnounceCompactSize-SignatureSize+KEMPublicKeySize] = MaxPeerIDSize + 1
			return b
		}), ErrTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseAnnounce(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for n := 0; n < len(raw); n++ {
		if _, err := ParseAnnounce(raw[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	// Building with bad hints fails.
	id := testIdentity(t, 4)
	for _, h := range []*Hints{
		{PeerID: make([]byte, MaxPeerIDSize+1)},
		{Addrs: make([][]byte, MaxAddrHints+1)},
		{Addrs: [][]byte{{}}},
		{Addrs: [][]byte{make([]byte, MaxAddrHintSize+1)}},
	} {
		if _, err := NewAnnounce(id, AnnounceOptions{Hints: h}); err == nil {
			t.Fatalf("hints %v accepted", h)
		}
	}
}

func TestCapabilitiesString(t *testing.T) {
	if s := (CapRelay | CapFAPPRelay | 0x8000).String(); s != "relay,fapp-relay,0x8000" {
		t.Fatalf("got %q", s)
	}
}

func TestReceipt(t *testing.T) {
	bob := testIdentity(t, 2)
	id := EnvelopeKey(testHeader(bob.Address(), 7).ID)
	rc := NewReceipt(bob, id, TimestampOf(testNow))
	raw, _ := rc.MarshalBinary()
	if len(raw) != ReceiptSize {
		t.Fatalf("receipt is %d bytes", len(raw))
	}
	got, err := ParseReceipt(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(bob.Compact()); err != nil {
		t.Fatal(err)
	}
	if got.Key != id || got.Recipient != bob.Address() {
		t.Fatalf("decoded %+v", got)
	}
	if err := got.Verify(testIdentity(t, 1).Compact()); !errors.Is(err, ErrAddressMismatch) {
		t.Fatalf("wrong signer: %v", err)
	}
	flipEachBit(raw, nil, func(i int, c []byte) {
		got, err := ParseReceipt(c)
		if err == nil && got.Verify(bob.Compact()) == nil {
			t.Fatalf("bit %d flipped and the receipt verifies", i)
		}
	})
	for n := 0; n < len(raw); n++ {
		if _, err := ParseReceipt(raw[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ParseReceipt(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("trailing byte: %v", err)
	}
	v1 := bytes.Clone(raw)
	v1[1] = 1
	if _, err := ParseReceipt(v1); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("version 1: %v", err)
	}
	bad := append([]byte(nil), raw...)
	bad[0] = 0
	if _, err := ParseReceipt(bad); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("kind: %v", err)
	}
}

func TestAnnounceKEMKeyStrippedOrAttached(t *testing.T) {
	full, id := testAnnounce(t, true)
	compact := full.WithKEMKey(nil)
	if err := compact.Verify(testNow, AnnouncePolicy{}); err != nil {
		t.Fatalf("stripped KEM key broke the signature: %v", err)
	}
	raw, _ := compact.MarshalBinary()
	back, err := ParseAnnounce(raw)
	if err != nil || back.KEMKey != nil || back.Verify(testNow, AnnouncePolicy{}) != nil {
		t.Fatalf("stripped announce: %v", err)
	}
	again := back.WithKEMKey(id.Public().KEMPublicKey())
	if err := again.Verify(testNow, AnnouncePolicy{}); err != nil {
		t.Fatalf("re-attached KEM key: %v", err)
	}
	if err := back.WithKEMKey(testIdentity(t, 9).Public().KEMPublicKey()).Verify(testNow, AnnouncePolicy{}); !errors.Is(err, ErrAddressMismatch) {
		t.Fatalf("foreign KEM key attached: %v", err)
	}
}
