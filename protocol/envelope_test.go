package protocol

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func sealedEnvelope(t testing.TB, opts SealOptions) (*Envelope, *Identity, *Identity, []byte) {
	t.Helper()
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	body := []byte("hello bob, this is alice over the mesh")
	e, err := SealEnvelope(seeded(9), alice, bob.Public(), testHeader(bob.Address(), 1), body, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, alice, bob, body
}

func TestEnvelopeSealOpen(t *testing.T) {
	for _, sealedSender := range []bool{false, true} {
		name := map[bool]string{false: "plain-sender", true: "sealed-sender"}[sealedSender]
		t.Run(name, func(t *testing.T) {
			e, alice, bob, body := sealedEnvelope(t, SealOptions{SealedSender: sealedSender})
			raw, err := e.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != e.Size() {
				t.Fatalf("Size() = %d, encoded %d", e.Size(), len(raw))
			}
			got, err := ParseEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Verify(testNow, time.Minute); err != nil {
				t.Fatal(err)
			}
			src, ok := got.Source()
			if ok == sealedSender {
				t.Fatalf("Source() ok = %v with sealed sender %v", ok, sealedSender)
			}
			if ok && src != alice.Address() {
				t.Fatalf("source %v, want %v", src, alice.Address())
			}
			if ak := alice.Compact(); sealedSender && bytes.Contains(raw, ak.SigningKey[:]) {
				t.Fatal("sealed-sender envelope carries the sender's key in the clear")
			}
			op, err := got.Open(bob)
			if err != nil {
				t.Fatal(err)
			}
			if op.From != alice.Address() || !bytes.Equal(op.Body, body) {
				t.Fatalf("opened from %v body %q", op.From, op.Body)
			}
			if _, err := got.Open(alice); !errors.Is(err, ErrNotForUs) {
				t.Fatalf("open by the wrong identity: %v", err)
			}
		})
	}
}

func TestEnvelopeSignedClear(t *testing.T) {
	alice := testIdentity(t, 1)
	h := testHeader(testIdentity(t, 2).Address(), 2)
	h.Type = TypeFAPP
	h.WantReceipt = true
	e, err := SignEnvelope(alice, h, []byte("public announce"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.MarshalBinary()
	got, err := ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(testNow, 0); err != nil {
		t.Fatal(err)
	}
	if got.Flags != FlagWantReceipt || got.Type != TypeFAPP || string(got.Payload) != "public announce" {
		t.Fatalf("decoded %+v", got)
	}
	if _, err := got.Open(testIdentity(t, 2)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open on a clear envelope: %v", err)
	}
}

// TestEnvelopeTamper flips every bit of encoded envelopes. The hop count is
// the one field a forwarder may change: flipping it must not break the
// signature (it may still break the hop rule). Every other flip must make
// parsing, verification or opening fail.
func TestEnvelopeTamper(t *testing.T) {
	for _, sealedSender := range []bool{false, true} {
		e, _, bob, _ := sealedEnvelope(t, SealOptions{SealedSender: sealedSender})
		raw, _ := e.MarshalBinary()
		flipEachBit(raw, map[int]bool{hopCountOffset: true}, func(i int, c []byte) {
			got, err := ParseEnvelope(c)
			if err != nil {
				return
			}
			if err := got.VerifySignature(); err != nil {
				return
			}
			if _, err := got.Open(bob); err == nil {
				t.Fatalf("sealedSender=%v: bit %d (byte %d) flipped and the envelope still opens", sealedSender, i, i/8)
			}
		})
		c := append([]byte(nil), raw...)
		c[hopCountOffset] = 3
		got, err := ParseEnvelope(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.VerifySignature(); err != nil {
			t.Fatalf("hop count change broke the signature: %v", err)
		}
		if _, err := got.Open(bob); err != nil {
			t.Fatalf("hop count change broke opening: %v", err)
		}
	}
}

func TestEnvelopeHopCount(t *testing.T) {
	e, _, _, _ := sealedEnvelope(t, SealOptions{})
	raw, _ := e.MarshalBinary()
	for i := 0; i < int(e.HopLimit); i++ {
		if err := IncrementHopCount(raw); err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
	}
	if err := IncrementHopCount(raw); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("past the limit: %v", err)
	}
	got, err := ParseEnvelope(raw)
	if err != nil || got.HopCount != got.HopLimit || got.VerifySignature() != nil {
		t.Fatalf("after increments: %v %+v", err, got)
	}
	id, err := EnvelopeID(raw)
	if err != nil || id != e.ID {
		t.Fatalf("EnvelopeID = %v, %v", id, err)
	}
	if err := IncrementHopCount([]byte{byte(KindEnvelope)}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
}

func TestEnvelopeTimes(t *testing.T) {
	e, _, _, _ := sealedEnvelope(t, SealOptions{})
	if err := e.CheckTime(testNow.Add(25*time.Hour), 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := e.CheckTime(testNow.Add(-time.Hour), time.Minute); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("future: %v", err)
	}
	if err := e.CheckTime(testNow.Add(-30*time.Second), time.Minute); err != nil {
		t.Fatalf("within skew: %v", err)
	}
}

func TestEnvelopeBuildErrors(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	base := testHeader(bob.Address(), 1)
	cases := map[string]func(h *Header){
		"type zero":         func(h *Header) { h.Type = 0 },
		"unknown type":      func(h *Header) { h.Type = 99 },
		"hop limit zero":    func(h *Header) { h.HopLimit = 0 },
		"hop limit high":    func(h *Header) { h.HopLimit = MaxHopLimit + 1 },
		"expiry before":     func(h *Header) { h.Expires = h.Created },
		"lifetime too long": func(h *Header) { h.Expires = h.Created + Timestamp(MaxLifetime/time.Second) + 1 },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			h := base
			mut(&h)
			if _, err := SealEnvelope(seeded(1), alice, bob.Public(), h, []byte("x"), SealOptions{}); err == nil {
				t.Fatal("SealEnvelope accepted a bad header")
			}
			if _, err := SignEnvelope(alice, h, []byte("x")); err == nil {
				t.Fatal("SignEnvelope accepted a bad header")
			}
		})
	}
	h := base
	h.Dest = alice.Address()
	if _, err := SealEnvelope(seeded(1), alice, bob.Public(), h, nil, SealOptions{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("destination mismatch: %v", err)
	}
	if _, err := SignEnvelope(alice, base, make([]byte, MaxPayloadSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	if _, err := SealEnvelope(seeded(1), alice, bob.Public(), base, make([]byte, MaxPayloadSize), SealOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized sealed body: %v", err)
	}
	// The largest body that fits is accepted, with and without padding.
	max := MaxPayloadSize - SealOverhead - 1
	for _, p := range []*Padding{nil, {}} {
		e, err := SealEnvelope(seeded(1), alice, bob.Public(), base, make([]byte, max), SealOptions{Padding: p})
		if err != nil {
			t.Fatalf("max body: %v", err)
		}
		if len(e.Payload) != MaxPayloadSize {
			t.Fatalf("max body sealed to %d bytes", len(e.Payload))
		}
		if op, err := e.Open(bob); err != nil || len(op.Body) != max {
			t.Fatalf("open max body: %v", err)
		}
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	e, _, _, _ := sealedEnvelope(t, SealOptions{})
	raw, _ := e.MarshalBinary()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"empty":          {nil, ErrTruncated},
		"wrong kind":     {mod(func(b []byte) []byte { b[0] = byte(KindAnnounce); return b }), ErrUnknownKind},
		"unknown type":   {mod(func(b []byte) []byte { b[1] = 77; return b }), ErrUnknownKind},
		"unknown flag":   {mod(func(b []byte) []byte { b[2] |= 0x80; return b }), ErrMalformed},
		"hop over limit": {mod(func(b []byte) []byte { b[4] = b[3] + 1; return b }), ErrMalformed},
		"trailing":       {mod(func(b []byte) []byte { return append(b, 0) }), ErrTrailing},
		"huge length": {mod(func(b []byte) []byte {
			off := envelopeFixedSize + CompactIdentitySize
			b[off], b[off+1], b[off+2], b[off+3] = 0xff, 0xff, 0xff, 0xff
			return b
		}), ErrTooLarge},
		"oversized": {make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseEnvelope(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for n := 0; n < len(raw); n += 7 {
		if _, err := ParseEnvelope(raw[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}

func TestPadding(t *testing.T) {
	p := DefaultPadding
	for _, n := range []int{0, 1, 62, 63, 64, 100, 16383, 16384, 40000} {
		msg := bytes.Repeat([]byte{0}, n) // zeros are the hard case for unpadding
		padded, err := p.Pad(msg, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		size := len(padded)
		ok := size%16384 == 0
		for _, b := range p.Buckets {
			ok = ok || size == b
		}
		if !ok || size < n+1 {
			t.Fatalf("%d bytes padded to %d, not a bucket", n, size)
		}
		back, err := Unpad(padded)
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("%d bytes: unpad: %v", n, err)
		}
	}
	if _, err := Unpad(make([]byte, 10)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unpad without marker: %v", err)
	}
	if _, err := (Padding{Buckets: []int{64, 32}}).Pad(nil, 100); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decreasing buckets: %v", err)
	}
	if _, err := p.Pad(make([]byte, 100), 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	// Two bodies in the same bucket seal to the same length.
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	h := testHeader(bob.Address(), 1)
	e1, _ := SealEnvelope(seeded(1), alice, bob.Public(), h, make([]byte, 10), SealOptions{})
	e2, _ := SealEnvelope(seeded(1), alice, bob.Public(), h, make([]byte, 60), SealOptions{})
	if len(e1.Payload) != len(e2.Payload) {
		t.Fatalf("10 and 60 byte bodies sealed to %d and %d bytes", len(e1.Payload), len(e2.Payload))
	}
}

// TestEnvelopeKey: every copy of one envelope has one key, whatever its hop
// count; a signed envelope's key changes with any signed byte; a
// sealed-sender envelope's key ignores the header a forwarder can rewrite,
// and such a rewritten copy cannot be opened.
func TestEnvelopeKey(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	clear, err := SignEnvelope(alice, testHeader(bob.Address(), 1), []byte("clear"))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := SealEnvelope(seeded(3), alice, bob.Public(), testHeader(bob.Address(), 2), []byte("sealed sender"), SealOptions{SealedSender: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*Envelope{"clear": clear, "sealed sender": ss} {
		raw, _ := e.MarshalBinary()
		k, err := EnvelopeKeyOf(raw)
		if err != nil || k != e.Key() {
			t.Fatalf("%s: key of encoding %v (%v), of envelope %v", name, k, err, e.Key())
		}
		if err := IncrementHopCount(raw); err != nil {
			t.Fatal(err)
		}
		if k2, _ := EnvelopeKeyOf(raw); k2 != k {
			t.Fatalf("%s: hop count changed the key", name)
		}
		raw[6] ^= 1 // a message ID byte
		k3, _ := EnvelopeKeyOf(raw)
		if name == "clear" && k3 == k {
			t.Fatal("clear: a rewritten ID kept the key")
		}
		if name == "sealed sender" {
			if k3 != k {
				t.Fatal("sealed sender: a rewritten ID changed the key (dedup bypass)")
			}
			e2, err := ParseEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e2.Open(bob); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("rewritten sealed-sender header opened: %v", err)
			}
		}
	}
	if clear.Key() == ss.Key() || clear.Key() == EnvelopeKey(clear.ID) {
		t.Fatal("keys collide")
	}
	for _, n := range []int{0, 1, envelopeFixedSize + 3} {
		if _, err := EnvelopeKeyOf(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}

// TestOpenVerified: Open checks the outer signature, OpenVerified leaves it
// to its caller (who verified already) but still checks the inner one.
func TestOpenVerified(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	e, err := SealEnvelope(seeded(4), alice, bob.Public(), testHeader(bob.Address(), 5), []byte("once"), SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.Signature[0] ^= 1
	if _, err := e.Open(bob); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open with a bad outer signature: %v", err)
	}
	if op, err := e.OpenVerified(bob); err != nil || string(op.Body) != "once" {
		t.Fatalf("OpenVerified: %v", err)
	}
	ss, err := SealEnvelope(seeded(5), alice, bob.Public(), testHeader(bob.Address(), 6), []byte("inner"), SealOptions{SealedSender: true})
	if err != nil {
		t.Fatal(err)
	}
	if op, err := ss.OpenVerified(bob); err != nil || op.From != alice.Address() {
		t.Fatalf("sealed sender: %v", err)
	}
}
