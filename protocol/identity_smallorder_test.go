package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Attack: an identity whose Ed25519 key is a point of small order (there
// are eight; the check knew only the all-zero and identity encodings)
// accepts signatures nobody made: with such a key, R = a small-order point
// and S = 0 verify for a share of all messages, so any node could sign
// "as" the identity. The remaining six encodings are refused too.
func TestPublicIdentitySmallOrderEd25519(t *testing.T) {
	id, err := NewIdentity(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	good, err := id.Public().AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	} {
		k, _ := hex.DecodeString(h)
		b := append([]byte(nil), good...)
		copy(b[1:1+SigningKeySize], k)
		if _, err := ParsePublicIdentity(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Ed25519 key %s of small order: %v, want ErrMalformed", h, err)
		}
	}
}
