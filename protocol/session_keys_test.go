package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

// ratchet3 and ratchet (schedule 2, lite sessions) are the two
// HMAC-SHA-256 of their definitions, as crypto/hmac computes them, for
// keys of every byte value.
func TestRatchetsAreHMAC(t *testing.T) {
	mac := func(key [32]byte, label string, step byte) []byte {
		m := hmac.New(sha256.New, key[:])
		m.Write(append([]byte(label), step))
		return m.Sum(nil)
	}
	steps := map[string]func([32]byte) ([32]byte, [32]byte){labelSessionMsgKey3: ratchet3, "": ratchet}
	for label, step := range steps {
		for i := range 256 + 32 {
			var ck [32]byte
			for j := range ck {
				ck[j] = byte(i*31 + j*7)
			}
			if i >= 256 {
				ck = [32]byte{}
				ck[i-256] = 0xff
			}
			mk, next := step(ck)
			if want := mac(ck, label, 1); !bytes.Equal(mk[:], want) {
				t.Fatalf("label %q, key %x: message key %x, want %x", label, ck, mk, want)
			}
			if want := mac(ck, label, 2); !bytes.Equal(next[:], want) {
				t.Fatalf("label %q, key %x: next chain key %x, want %x", label, ck, next, want)
			}
		}
	}
}

// A step allocates nothing: it runs once per frame on each end.
func TestRatchet3Allocs(t *testing.T) {
	var ck [32]byte
	if n := testing.AllocsPerRun(100, func() { _, ck = ratchet3(ck); _, ck = ratchet(ck) }); n != 0 {
		t.Fatalf("%v allocations per step", n)
	}
}

// Both key schedules work in both exchanges, and a frame of one schedule
// never opens under the other (the mode selects the schedule; a session's
// mode is fixed at its init).
func TestSessionKeySchedules(t *testing.T) {
	for _, m := range []SessionMode{SessionModeX25519V2, SessionModeXWingV2, SessionModeX25519, SessionModeXWing} {
		r := sessionPair(t, m, 1)
		for i := range 3 {
			f, err := r.a.Seal(false, []byte("schedule"))
			if err != nil {
				t.Fatal(err)
			}
			pt, _, err := r.b.Open(f)
			if err != nil || string(pt) != "schedule" {
				t.Fatalf("mode %d frame %d: %q, %v", m, i, pt, err)
			}
		}
	}
	// The same chain keys under the other schedule: the frame is refused
	// as a forgery and changes nothing.
	r := sessionPair(t, SessionModeX25519, 1)
	f, err := r.a.Seal(false, []byte("v3 frame"))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.b.MarshalBinary()
	r.b.mode = SessionModeX25519V2
	if _, _, err := r.b.Open(f); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("v3 frame under schedule 2: %v", err)
	}
	r.b.mode = SessionModeX25519
	if after, _ := r.b.MarshalBinary(); !bytes.Equal(before, after) {
		t.Fatal("a refused frame changed the state")
	}
}

// An init in a mode this version does not know (what an older version
// sees of modes 3 and 4) is refused by the decoder, before any key work.
func TestSessionInitUnknownMode(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	_, in, err := StartSession(seeded(30), alice, bob.Public(), SessionModeX25519, TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := in.MarshalBinary()
	raw[22] = 5
	if _, err := ParseSessionInit(raw); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("init in mode 5: %v", err)
	}
}

// SessionMessageKey is the digest protocol.md section 10 gives, whatever
// way it is computed.
func TestSessionMessageKeyDigest(t *testing.T) {
	var sender Address
	for i := range sender {
		sender[i] = byte(0xa0 + i)
	}
	for _, n := range []uint64{0, 1, 0x0123456789ab, 1<<48 - 1} {
		h := sha256.New()
		h.Write([]byte("meshd/session-msg-key/v2\x00"))
		h.Write(sender[:])
		h.Write([]byte{byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		want := h.Sum(nil)[:16]
		if got := SessionMessageKey(sender, n); !bytes.Equal(got[:], want) {
			t.Fatalf("number %x: %x, want %x", n, got, want)
		}
	}
}
