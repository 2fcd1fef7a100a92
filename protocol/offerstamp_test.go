package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestOfferStampBinding(t *testing.T) {
	key, relay := EnvelopeKey{1, 2, 3}, Address{9}
	s, err := MintOfferStamp(key, relay, Address{7}, 12, 77, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(key, relay, Address{7}, 12); err != nil {
		t.Fatalf("minted stamp refused: %v", err)
	}
	for _, tt := range []struct {
		name  string
		key   EnvelopeKey
		relay Address
		from  Address
		min   uint8
	}{
		{"another envelope", EnvelopeKey{1, 2, 4}, relay, Address{7}, 12},
		{"another relay", key, Address{8}, Address{7}, 12},
		{"another offerer", key, relay, Address{6}, 12},
		{"fewer bits than wanted", key, relay, Address{7}, 13},
	} {
		// Another envelope or relay gives a fresh hash: 12 zero bits by
		// chance with probability 2^-12; these fixed inputs do not.
		if err := s.Check(tt.key, tt.relay, tt.from, tt.min); !errors.Is(err, ErrStamp) {
			t.Errorf("%s: err = %v, want ErrStamp", tt.name, err)
		}
	}
	if _, err := MintOfferStamp(key, relay, Address{7}, MaxOfferStampBits+1, 0, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("mint over the limit: err = %v", err)
	}
	if _, err := MintOfferStamp(key, relay, Address{7}, 20, 0, 1); !errors.Is(err, ErrStamp) {
		t.Errorf("mint with one try: err = %v", err)
	}
}

func TestStampedOfferRoundTrip(t *testing.T) {
	env := goldenVectors(t)["envelope-clear"]
	s := OfferStamp{Bits: 16, Nonce: 0x0102030405060708}
	b := AppendStampedCustodyOffer(nil, s, env)
	e, got, err := ParseStampedCustodyOffer(b)
	if err != nil || got != s {
		t.Fatalf("parse: %v, stamp %+v", err, got)
	}
	raw, _ := e.MarshalBinary()
	if !bytes.Equal(raw, env) {
		t.Fatal("envelope differs")
	}
	for _, bad := range [][]byte{nil, {byte(KindCustodyOffer)}, b[:5], b[:10], AppendCustodyOffer(nil, env)} {
		if _, _, err := ParseStampedCustodyOffer(bad); err == nil {
			t.Errorf("% x: accepted", bad[:min(len(bad), 4)])
		}
	}
	ans := AppendCustodyStampAnswer(nil, MessageID{5}, 16)
	id, st, bits, err := ParseCustodyAnswer(ans)
	if err != nil || id != (MessageID{5}) || st != CustodyRefusedStamp || bits != 16 {
		t.Fatalf("answer: %v %v %v %v", id, st, bits, err)
	}
	if _, st, bits, err := ParseCustodyAnswer(AppendCustodyAccept(nil, MessageID{5}, CustodyAccepted)); err != nil || st != CustodyAccepted || bits != 0 {
		t.Fatalf("plain answer: %v %v %v", st, bits, err)
	}
	for _, bad := range [][]byte{AppendCustodyAccept(nil, MessageID{5}, CustodyRefusedStamp), AppendCustodyStampAnswer(nil, MessageID{}, MaxOfferStampBits+1), append(AppendCustodyAccept(nil, MessageID{}, CustodyAccepted), 1)} {
		if _, _, _, err := ParseCustodyAnswer(bad); err == nil {
			t.Errorf("answer % x accepted", bad)
		}
	}
}

func FuzzParseStampedCustodyOffer(f *testing.F) {
	f.Add(AppendStampedCustodyOffer(nil, OfferStamp{Bits: 16, Nonce: 1}, goldenVectors(&testing.T{})["envelope-clear"]))
	f.Add(AppendCustodyStampAnswer(nil, MessageID{1}, 16))
	f.Add([]byte{byte(KindCustodyOfferStamped)})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, s, err := ParseStampedCustodyOffer(b); err == nil {
			raw, err := e.MarshalBinary()
			if err != nil || !bytes.Equal(AppendStampedCustodyOffer(nil, s, raw), b) {
				t.Fatalf("re-encoding differs: %v", err)
			}
		}
		if id, st, bits, err := ParseCustodyAnswer(b); err == nil {
			var again []byte
			if st == CustodyRefusedStamp {
				again = AppendCustodyStampAnswer(nil, id, bits)
			} else {
				again = AppendCustodyAccept(nil, id, st)
			}
			if !bytes.Equal(again, b) {
				t.Fatal("answer re-encoding differs")
			}
		}
	})
}

// BenchmarkMintOfferStamp16 mints 16-bit stamps (expected 2^16 hashes).
func BenchmarkMintOfferStamp16(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := MintOfferStamp(EnvelopeKey{byte(i), byte(i >> 8)}, Address{1}, Address{2}, 16, uint64(i)<<32, 1<<24); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckOfferStamp is the relay's check: one hash.
func BenchmarkCheckOfferStamp(b *testing.B) {
	s := OfferStamp{Bits: 16, Nonce: 1}
	for i := 0; i < b.N; i++ {
		_ = s.Check(EnvelopeKey{}, Address{1}, Address{2}, 16)
	}
}
