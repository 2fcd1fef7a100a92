package protocol

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// Benchmarks for docs/performance.md. Run:
//
//	go test ./protocol -run '^$' -bench . -benchmem

func BenchmarkIdentityGenerate(b *testing.B) {
	r := seeded(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewIdentity(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519VerifyRaw is the baseline the signed formats are compared
// with: a bare Ed25519 verification of 256 bytes.
func BenchmarkEd25519VerifyRaw(b *testing.B) {
	id := testIdentity(b, 1)
	msg := make([]byte, 256)
	sig := ed25519.Sign(id.sign, msg)
	pub := id.sign.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func benchEnvelope(b *testing.B) (*Envelope, []byte, *Identity, *Identity) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	e, err := SealEnvelope(seeded(3), alice, bob.Public(), testHeader(bob.Address(), 1), make([]byte, 256), SealOptions{})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := e.MarshalBinary()
	return e, raw, alice, bob
}

func BenchmarkEnvelopeSign(b *testing.B) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	h := testHeader(bob.Address(), 1)
	payload := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignEnvelope(alice, h, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeVerify(b *testing.B) {
	e, _, _, _ := benchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Verify(testNow, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeSeal seals a 256-byte body (padded to 512) for one
// recipient: X-Wing encapsulation, ChaCha20-Poly1305 and the signature.
func BenchmarkEnvelopeSeal(b *testing.B) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	h := testHeader(bob.Address(), 1)
	body := make([]byte, 256)
	r := seeded(3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealEnvelope(r, alice, bob.Public(), h, body, SealOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeOpen(b *testing.B) {
	e, _, _, bob := benchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Open(bob); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	e, raw, _, _ := benchEnvelope(b)
	buf := make([]byte, 0, len(raw))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	_, raw, _, _ := benchEnvelope(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEnvelope(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeForwardCheck is what a forwarder does per envelope:
// decode, check times, verify the signature.
func BenchmarkEnvelopeForwardCheck(b *testing.B) {
	_, raw, _, _ := benchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		e, err := ParseEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Verify(testNow, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnnounceSign(b *testing.B) {
	id := testIdentity(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewAnnounce(id, AnnounceOptions{Sequence: 1, Timestamp: TimestampOf(testNow)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnnounceVerify(b *testing.B) {
	a, _ := testAnnounce(b, false)
	raw, _ := a.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		a, err := ParseAnnounce(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Verify(testNow, AnnouncePolicy{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReceiptVerify(b *testing.B) {
	bob := testIdentity(b, 2)
	raw, _ := NewReceipt(bob, EnvelopeKey{1}, TimestampOf(testNow)).MarshalBinary()
	c := bob.Compact()
	b.ReportAllocs()
	for b.Loop() {
		rc, err := ParseReceipt(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := rc.Verify(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLiteInitAccept(b *testing.B) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	_, in, err := StartLiteSession(seeded(5), alice, bob.Public(), TimestampOf(testNow))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AcceptLiteSession(bob, in, testNow, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLiteSeal and BenchmarkLiteOpen use a 100-byte message, a
// typical LoRa text message.
func BenchmarkLiteSeal(b *testing.B) {
	a, _, _ := litePair(b)
	msg := make([]byte, 100)
	b.SetBytes(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Seal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLiteOpen(b *testing.B) {
	a, s, _ := litePair(b)
	msg := make([]byte, 100)
	frames := make([][]byte, 4096)
	for i := range frames {
		frames[i], _ = a.Seal(msg)
	}
	b.SetBytes(100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(frames) {
			b.StopTimer()
			_, s, _ = litePair(b)
			i = 0
			b.StartTimer()
		}
		if _, err := s.Open(frames[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
