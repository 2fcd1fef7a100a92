package protocol

import (
	"bytes"
	"testing"
	"time"
)

// Fuzz targets for every decoder of outside input. Each is seeded from the
// golden vectors and table cases; each checks that decoding never panics
// and that whatever decodes re-encodes to the same bytes (Parse -> Marshal
// -> Parse), so the encoding stays canonical.

func addGolden(f *testing.F, names ...string) {
	f.Helper()
	v := goldenVectors(&testing.T{})
	for _, n := range names {
		f.Add(v[n])
	}
}

func FuzzParseEnvelope(f *testing.F) {
	addGolden(f, "envelope-sealed", "envelope-sealed-sender", "envelope-clear")
	// A session message that went on as an envelope (type 5).
	sm := bytes.Clone(goldenVectors(&testing.T{})["envelope-sealed"])
	sm[1] = byte(TypeSessionMessage)
	f.Add(sm)
	f.Add([]byte{byte(KindEnvelope)})
	f.Add([]byte{})
	bob := testIdentity(f, 2)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if e != nil {
				t.Fatal("non-nil envelope with an error")
			}
			return
		}
		out, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed envelope does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
		_ = e.Verify(testNow, time.Minute)
		_, _ = EnvelopeID(b)
		if k, err := EnvelopeKeyOf(b); err != nil || k != e.Key() {
			t.Fatalf("key of the encoding %v (%v), of the envelope %v", k, err, e.Key())
		}
		if e.Dest == bob.Address() && e.Flags&FlagSealed != 0 {
			_, _ = e.Open(bob)
		}
		c := append([]byte(nil), b...)
		_ = IncrementHopCount(c)
	})
}

func FuzzParseAnnounce(f *testing.F) {
	addGolden(f, "announce-compact", "announce-full")
	f.Add([]byte{byte(KindAnnounce), 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnnounce(b)
		if err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed announce does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
		if a.Verify(testNow, AnnouncePolicy{}) == nil && a.KEMKey != nil {
			if _, err := a.PublicIdentity(); err != nil {
				t.Fatalf("verified announce without a usable identity: %v", err)
			}
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	addGolden(f, "receipt")
	bob := testIdentity(f, 2)
	f.Fuzz(func(t *testing.T, b []byte) {
		rc, err := ParseReceipt(b)
		if err != nil {
			return
		}
		out, _ := rc.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
		_ = rc.Verify(bob.Compact())
	})
}

func FuzzParseLiteInit(f *testing.F) {
	addGolden(f, "lite-init")
	bob := testIdentity(f, 2)
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseLiteInit(b)
		if err != nil {
			return
		}
		out, _ := in.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
		_, _ = AcceptLiteSession(bob, in, testNow, 0)
	})
}

// FuzzLiteOpen feeds arbitrary frames to an established session: no panic,
// and a rejected frame never changes the session state.
func FuzzLiteOpen(f *testing.F) {
	v := goldenVectors(&testing.T{})
	f.Add(v["lite-frame"])
	f.Add([]byte{byte(KindLiteData)})
	_, b, _ := litePair(f)
	base, _ := b.MarshalBinary()
	f.Fuzz(func(t *testing.T, frame []byte) {
		s, err := ParseLiteSession(base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(frame); err != nil {
			after, _ := s.MarshalBinary()
			if !bytes.Equal(after, base) {
				t.Fatal("a rejected frame changed the session")
			}
		}
		_, _ = LiteFrameID(frame)
	})
}

func FuzzParseLiteSession(f *testing.F) {
	addGolden(f, "lite-session")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseLiteSession(b)
		if err != nil {
			return
		}
		out, _ := s.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
		// A restored session must be usable without panicking.
		_, _ = s.Seal([]byte("x"))
		_, _ = s.Open(make([]byte, LiteOverhead))
	})
}

func FuzzParseIdentity(f *testing.F) {
	addGolden(f, "identity")
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentity(b)
		if err != nil {
			return
		}
		out, _ := id.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParsePublicIdentity(f *testing.F) {
	addGolden(f, "public-identity")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicIdentity(b)
		if err != nil {
			return
		}
		out, _ := p.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	f.Add("00112233445566778899aabbccddeeff")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if b, _ := ParseAddress(a.String()); b != a {
			t.Fatal("address text does not round trip")
		}
	})
}

func FuzzUnpad(f *testing.F) {
	f.Add([]byte{1, 2, 0x80, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := Unpad(b)
		if err != nil {
			return
		}
		p, err := (Padding{}).Pad(msg, len(b)+1)
		if err != nil || !bytes.Equal(p, b[:len(msg)+1]) {
			t.Fatal("unpadded message does not re-pad to the same prefix")
		}
	})
}
