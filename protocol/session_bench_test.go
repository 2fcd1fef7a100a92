package protocol

import (
	"fmt"
	"testing"
)

func BenchmarkSessionAccept(b *testing.B) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	for _, m := range []SessionMode{SessionModeX25519, SessionModeXWing} {
		b.Run(fmt.Sprintf("mode%d", m), func(b *testing.B) {
			_, in, err := StartSession(seeded(1), alice, bob.Public(), m, TimestampOf(testNow))
			if err != nil {
				b.Fatal(err)
			}
			rnd := seeded(2)
			for b.Loop() {
				if _, _, err := AcceptSession(rnd, bob, in, testNow, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSessionStart(b *testing.B) {
	alice, bob := testIdentity(b, 1), testIdentity(b, 2)
	for _, m := range []SessionMode{SessionModeX25519, SessionModeXWing} {
		b.Run(fmt.Sprintf("mode%d", m), func(b *testing.B) {
			rnd := seeded(3)
			for b.Loop() {
				if _, _, err := StartSession(rnd, alice, bob.Public(), m, TimestampOf(testNow)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSessionSealOpen(b *testing.B) {
	r := sessionPair(b, SessionModeX25519, 1)
	pt := make([]byte, 100)
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.a.Seal(false, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		// A fresh pair per run: frames sealed for an earlier run and never
		// opened would put the next ones beyond the skip limit.
		r := sessionPair(b, SessionModeX25519, 1)
		var frames [][]byte
		for b.Loop() {
			if len(frames) == 0 {
				b.StopTimer()
				for range 1 << 14 {
					f, _ := r.a.Seal(false, pt)
					frames = append(frames, f)
				}
				b.StartTimer()
			}
			if _, _, err := r.b.Open(frames[0]); err != nil {
				b.Fatal(err)
			}
			frames = frames[1:]
		}
	})
}
