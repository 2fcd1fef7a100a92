package protocol

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cloudflare/circl/kem/xwing"
)

// TestDerivedKEMKeyIsUnpacked: identityFromSeeds keeps the public key the
// key derivation returned instead of decoding its packed form; the two must
// be the same value, field by field (the ML-KEM matrix, the normalised NTT
// vector, the key's hash, the X25519 key), and encapsulate the same.
func TestDerivedKEMKeyIsUnpacked(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	for i := range 20 {
		var seed [xwing.SeedSize]byte
		_, _ = rng.Read(seed[:])
		_, derived := xwing.DeriveKeyPair(seed[:])
		var packed [KEMPublicKeySize]byte
		derived.Pack(packed[:])
		var unpacked xwing.PublicKey
		if err := unpacked.Unpack(packed[:]); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*derived, unpacked) {
			t.Fatalf("seed %d: derived public key differs from its decoded packed form", i)
		}
		var eseed [xwing.EncapsulationSeedSize]byte
		_, _ = rng.Read(eseed[:])
		var ct1, ct2 [xwing.CiphertextSize]byte
		var ss1, ss2 [xwing.SharedKeySize]byte
		derived.EncapsulateTo(ct1[:], ss1[:], eseed[:])
		unpacked.EncapsulateTo(ct2[:], ss2[:], eseed[:])
		if ct1 != ct2 || ss1 != ss2 {
			t.Fatalf("seed %d: encapsulation differs", i)
		}
	}
}

// TestIdentityPublicKEMKey: an identity's public KEM key is the one a peer
// decodes from its bytes (what the identity's own sealing to itself uses
// is what a peer's sealing uses).
func TestIdentityPublicKEMKey(t *testing.T) {
	id, err := NewIdentity(rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := newPublicIdentity(id.pub.compact.SigningKey[:], id.pub.kemBytes[:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(id.Public(), peer) {
		t.Fatal("an identity's public identity differs from the one decoded from its keys")
	}
}
