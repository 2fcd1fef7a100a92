package protocol

import (
	"math/rand/v2"
	"testing"
	"time"
)

// seeded returns a deterministic io.Reader for tests.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	for i := range s {
		s[i] = seed + byte(i)
	}
	return rand.NewChaCha8(s)
}

// testIdentity returns a deterministic identity for seed.
func testIdentity(t testing.TB, seed byte) *Identity {
	t.Helper()
	id, err := NewIdentity(seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testNow is the fixed clock of the tests: 2026-11-25 12:00:00 UTC.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testHeader(dest Address, idSeed byte) Header {
	var id MessageID
	for i := range id {
		id[i] = idSeed ^ byte(i)
	}
	return Header{
		Type:     TypeMessage,
		HopLimit: 8,
		ID:       id,
		Created:  TimestampOf(testNow),
		Expires:  TimestampOf(testNow.Add(24 * time.Hour)),
		Dest:     dest,
	}
}

// flipEachBit calls f with a copy of b with bit i flipped, for every bit
// whose byte index is not in skip.
func flipEachBit(b []byte, skip map[int]bool, f func(i int, flipped []byte)) {
	for i := 0; i < len(b)*8; i++ {
		if skip[i/8] {
			continue
		}
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		f(i, c)
	}
}
