package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// litePair establishes a session between alice (initiator) and bob.
func litePair(t testing.TB) (a, b *LiteSession, initRaw []byte) {
	t.Helper()
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	a, in, err := StartLiteSession(seeded(5), alice, bob.Public(), TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	initRaw, err = in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseLiteInit(initRaw)
	if err != nil {
		t.Fatal(err)
	}
	b, err = AcceptLiteSession(bob, parsed, testNow.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, initRaw
}

func TestLiteSessionBothWays(t *testing.T) {
	a, b, initRaw := litePair(t)
	if len(initRaw) != LiteInitSize {
		t.Fatalf("init is %d bytes, want %d", len(initRaw), LiteInitSize)
	}
	if a.SendID() != b.RecvID() || a.RecvID() != b.SendID() || a.SendID() == a.RecvID() {
		t.Fatal("session IDs do not pair up")
	}
	if b.Remote() != testIdentity(t, 1).Compact() || !a.Initiator() || b.Initiator() {
		t.Fatal("session metadata")
	}
	for i := 0; i < 5; i++ {
		msg := []byte(fmt.Sprintf("a->b %d", i))
		f, err := a.Seal(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Open(f)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("a->b %d: %v", i, err)
		}
		reply := []byte(fmt.Sprintf("b->a %d", i))
		f, _ = b.Seal(reply)
		got, err = a.Open(f)
		if err != nil || !bytes.Equal(got, reply) {
			t.Fatalf("b->a %d: %v", i, err)
		}
	}
}

func TestLiteOverheadBudget(t *testing.T) {
	a, _, _ := litePair(t)
	for _, n := range []int{0, 1, 100, 200} {
		f, err := a.Seal(make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		over := len(f) - n
		if over != LiteOverhead || over > 32 {
			t.Fatalf("overhead %d bytes for a %d-byte message; budget is 32", over, n)
		}
		if LiteTagSize < 8 {
			t.Fatal("tag shorter than 8 bytes")
		}
	}
}

func TestLiteReplayAndReorder(t *testing.T) {
	a, b, _ := litePair(t)
	var frames [][]byte
	for i := 0; i < 10; i++ {
		f, _ := a.Seal([]byte{byte(i)})
		frames = append(frames, f)
	}
	// Out of order within the window: each accepted exactly once.
	for _, i := range []int{3, 0, 9, 1, 2, 8, 4, 5, 7, 6} {
		got, err := b.Open(frames[i])
		if err != nil || got[0] != byte(i) {
			t.Fatalf("frame %d: %v", i, err)
		}
		if _, err := b.Open(frames[i]); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of frame %d: %v", i, err)
		}
	}
	// A frame that fell out of the window is refused.
	old, _ := a.Seal([]byte("old"))
	for i := 0; i < LiteReplayWindow+1; i++ {
		f, _ := a.Seal(nil)
		if _, err := b.Open(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Open(old); !errors.Is(err, ErrReplay) {
		t.Fatalf("frame outside the window: %v", err)
	}
	if len(b.skipped) > LiteReplayWindow {
		t.Fatalf("%d skipped keys kept", len(b.skipped))
	}
}

func TestLiteTooFarAhead(t *testing.T) {
	a, b, _ := litePair(t)
	var last []byte
	for i := 0; i <= LiteMaxSkip+1; i++ {
		last, _ = a.Seal([]byte("x"))
	}
	if _, err := b.Open(last); !errors.Is(err, ErrLimit) {
		t.Fatalf("frame %d ahead: %v", LiteMaxSkip+1, err)
	}
}

func TestLiteTamperLeavesStateUnchanged(t *testing.T) {
	a, b, _ := litePair(t)
	f, _ := a.Seal([]byte("attack at dawn"))
	before, _ := b.MarshalBinary()
	flipEachBit(f, nil, func(i int, c []byte) {
		if _, err := b.Open(c); err == nil {
			t.Fatalf("bit %d flipped and the frame opens", i)
		}
	})
	after, _ := b.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("rejected frames changed the session")
	}
	if got, err := b.Open(f); err != nil || string(got) != "attack at dawn" {
		t.Fatalf("genuine frame after forgeries: %v", err)
	}
	// A frame truncated below the overhead is refused.
	if _, err := b.Open(f[:LiteOverhead-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short frame: %v", err)
	}
}

func TestLiteForwardSecrecyErasesKeys(t *testing.T) {
	a, b, _ := litePair(t)
	f0, _ := a.Seal([]byte("zero"))
	f1, _ := a.Seal([]byte("one"))
	if _, err := b.Open(f1); err != nil {
		t.Fatal(err)
	}
	if len(b.skipped) != 1 {
		t.Fatalf("%d skipped keys, want 1", len(b.skipped))
	}
	if _, err := b.Open(f0); err != nil {
		t.Fatal(err)
	}
	// Every key used so far is gone: the state holds only chain keys for
	// future counters, so a later compromise reveals nothing of f0 or f1.
	if len(b.skipped) != 0 {
		t.Fatal("a used message key was kept")
	}
	state, _ := b.MarshalBinary()
	c, _ := ParseLiteSession(state)
	for _, f := range [][]byte{f0, f1} {
		if _, err := c.Open(f); err == nil {
			t.Fatal("a restored session decrypted an old frame")
		}
	}
}

func TestLiteSessionPersistence(t *testing.T) {
	a, b, _ := litePair(t)
	f0, _ := a.Seal([]byte("zero"))
	f1, _ := a.Seal([]byte("one"))
	f2, _ := a.Seal([]byte("two"))
	if _, err := b.Open(f2); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*LiteSession{a, b} {
		raw, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseLiteSession(raw)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(raw, again) {
			t.Fatal("session state does not round trip")
		}
	}
	raw, _ := b.MarshalBinary()
	b2, _ := ParseLiteSession(raw)
	if got, err := b2.Open(f0); err != nil || string(got) != "zero" {
		t.Fatalf("restored session, skipped frame: %v", err)
	}
	if got, err := b2.Open(f1); err != nil || string(got) != "one" {
		t.Fatalf("restored session, skipped frame: %v", err)
	}
	if _, err := b2.Open(f2); !errors.Is(err, ErrReplay) {
		t.Fatalf("restored session accepted a replay: %v", err)
	}
	// A restored sender continues the counter, never reusing a key.
	raw, _ = a.MarshalBinary()
	a2, _ := ParseLiteSession(raw)
	f3, _ := a2.Seal([]byte("three"))
	if got, err := b2.Open(f3); err != nil || string(got) != "three" {
		t.Fatalf("restored sender: %v", err)
	}
}

func TestParseLiteSessionRejects(t *testing.T) {
	_, b, _ := litePair(t)
	raw, _ := b.MarshalBinary()
	for n := 0; n < len(raw); n++ {
		if _, err := ParseLiteSession(raw[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	bad := append([]byte(nil), raw...)
	bad[1] = 2
	if _, err := ParseLiteSession(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("flags: %v", err)
	}
	bad = append([]byte(nil), raw...)
	bad[162] = LiteReplayWindow + 1
	if _, err := ParseLiteSession(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("skipped count: %v", err)
	}
	// A skipped counter at or past the next expected counter is refused.
	bad = append(append([]byte(nil), raw...), make([]byte, 36)...)
	bad[162] = 1
	if _, err := ParseLiteSession(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("skipped counter: %v", err)
	}
}

func TestLiteInitRejects(t *testing.T) {
	alice, bob, carol := testIdentity(t, 1), testIdentity(t, 2), testIdentity(t, 3)
	_, in, err := StartLiteSession(seeded(5), alice, bob.Public(), TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcceptLiteSession(carol, in, testNow, 0); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("wrong responder: %v", err)
	}
	if _, err := AcceptLiteSession(bob, in, testNow.Add(time.Hour), 0); !errors.Is(err, ErrExpired) {
		t.Fatalf("old init: %v", err)
	}
	if _, err := AcceptLiteSession(bob, in, testNow.Add(-time.Hour), 0); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("future init: %v", err)
	}
	raw, _ := in.MarshalBinary()
	// Every flipped bit is caught by the signature (or the address check).
	checked := 0
	flipEachBit(raw, nil, func(i int, c []byte) {
		if i%5 != 0 { // the full sweep is ~10k signature checks; every 5th bit keeps it fast
			return
		}
		checked++
		p, err := ParseLiteInit(c)
		if err != nil {
			return
		}
		if _, err := AcceptLiteSession(bob, p, testNow, 0); err == nil {
			t.Fatalf("bit %d flipped and the init is accepted", i)
		}
	})
	if checked == 0 {
		t.Fatal("no bits checked")
	}
	for _, n := range []int{0, 1, 85, LiteInitSize - 1} {
		if _, err := ParseLiteInit(raw[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ParseLiteInit(append(raw, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatal("long init accepted")
	}
	if _, err := LiteFrameID(raw); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("LiteFrameID on an init: %v", err)
	}
}

func TestLiteSealLimits(t *testing.T) {
	a, b, _ := litePair(t)
	if _, err := a.Seal(make([]byte, MaxLitePlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	a.sendN = uint64(^uint32(0)) + 1
	if _, err := a.Seal(nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("exhausted counter: %v", err)
	}
	f, _ := b.Seal([]byte("x"))
	if _, err := b.Open(f); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("own frame: %v", err)
	}
}
