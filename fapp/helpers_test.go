package fapp

import (
	"math/rand/v2"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// seeded returns a deterministic io.Reader for tests.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	for i := range s {
		s[i] = seed + byte(i)
	}
	return rand.NewChaCha8(s)
}

// Identities are slow to make (X-Wing key generation), so tests share them.
var idCache = map[byte]*protocol.Identity{}

func testIdentity(t testing.TB, seed byte) *protocol.Identity {
	t.Helper()
	if id := idCache[seed]; id != nil {
		return id
	}
	id, err := protocol.NewIdentity(seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	idCache[seed] = id
	return id
}

// testNow is the tests' clock: Wednesday 2026-12-02 09:00 UTC (10:00 CET).
var testNow = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

func mustPLZ(t testing.TB, s string) PLZ {
	t.Helper()
	p, err := ParsePLZ(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testSlots returns n typical slots starting the day after testNow.
func testSlots(n int) []Slot {
	base := BerlinTime(2026, 12, 3, 18, 0)
	out := make([]Slot, n)
	for i := range out {
		out[i] = Slot{ID: uint16(i + 1), Terminart: Sprechstunde, Verfahren: Verhaltenstherapie, Setting: Einzel,
			Modalitaet: Praxis, Voraussetzung: VoraussetzungKeine, Start: base.Add(time.Duration(i) * 24 * time.Hour),
			Dauer: 50, Status: SlotFrei}
	}
	return out
}

// testAnnounce returns an unsigned announce with n slots issued at testNow.
func testAnnounce(t testing.TB, n int) *SlotAnnounce {
	return &SlotAnnounce{
		Profile: ProfileRef{1, 2, 3, 4, 5, 6, 7, 8}, Sequence: 1, Issued: testNow, Expires: testNow.Add(24 * time.Hour),
		PLZ: mustPLZ(t, "10437"), Verfahren: SetOf(Verhaltenstherapie, Systemisch), Kostentraeger: SetOf(GKV, Selbstzahler),
		Altersgruppen: SetOf(Erwachsene), Sprachen: []Sprache{{'d', 'e'}, {'t', 'r'}}, Geschlecht: Weiblich,
		BarrierefreiZugang: true, Slots: testSlots(n),
	}
}

// signed signs a with the identity of seed and returns the encoding.
func signed(t testing.TB, seed byte, a *SlotAnnounce) []byte {
	t.Helper()
	raw, err := SignAnnounce(testIdentity(t, seed), a, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// flipEachBit calls f with a copy of b with bit i flipped, for every bit.
func flipEachBit(b []byte, f func(i int, flipped []byte)) {
	for i := 0; i < len(b)*8; i++ {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		f(i, c)
	}
}

// randReader is a deterministic io.Reader (ChaCha8).
type randReader = rand.ChaCha8

func newRandReader(seed byte) *randReader { return seeded(seed) }
