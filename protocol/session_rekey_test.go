package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// rekey runs one rekey exchange through the relays and returns the answer
// frame as it reached the initiator.
func (r sessionRun) rekey(t *testing.T, seed byte) []byte {
	t.Helper()
	ask, err := r.a.StartRekey(seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	pt, ctl, err := r.b.Open(r.relay(t, ask))
	if err != nil || !ctl {
		t.Fatalf("rekey request: %v", err)
	}
	if typ, err := SessionControlType(pt); err != nil || typ != SessionCtlRekeyAsk {
		t.Fatalf("control type %d: %v", typ, err)
	}
	ans, err := r.b.AnswerRekey(seeded(seed+1), pt)
	if err != nil {
		t.Fatal(err)
	}
	ans = r.relay(t, ans)
	pt, ctl, err = r.a.Open(ans)
	if err != nil || !ctl {
		t.Fatalf("rekey answer: %v", err)
	}
	if err := r.a.FinishRekey(pt); err != nil {
		t.Fatal(err)
	}
	return ans
}

func TestSessionRekey(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 2)
	inFlight, _ := r.a.Seal(false, []byte("sent before the rekey"))
	back, _ := r.b.Seal(false, []byte("answer before the rekey"))
	r.rekey(t, 70)
	if r.a.Sent() != 0 || r.b.Sent() != 0 {
		t.Fatal("a new key phase starts its counters at zero")
	}
	// Frames of the previous phase still in flight open once.
	if pt, _, err := r.b.Open(r.relay(t, inFlight)); err != nil || string(pt) != "sent before the rekey" {
		t.Fatalf("frame of the previous phase: %v", err)
	}
	if _, _, err := r.a.Open(r.relay(t, back)); err != nil {
		t.Fatalf("frame of the previous phase, other way: %v", err)
	}
	for i := 0; i < 3; i++ {
		f, _ := r.a.Seal(false, []byte("new phase"))
		if _, _, err := r.b.Open(r.relay(t, f)); err != nil {
			t.Fatalf("a->b after rekey: %v", err)
		}
		g, _ := r.b.Seal(false, []byte("new phase"))
		if _, _, err := r.a.Open(r.relay(t, g)); err != nil {
			t.Fatalf("b->a after rekey: %v", err)
		}
	}
	old, _ := r.a.Seal(false, []byte("phase 1"))
	r.rekey(t, 72)
	if _, _, err := r.b.Open(r.relay(t, old)); err != nil {
		t.Fatalf("frame one phase old: %v", err)
	}
	old, _ = r.a.Seal(false, []byte("phase 0"))
	r.rekey(t, 74)
	r.rekey(t, 76)
	// The phase bit names the current phase again; the old frame fails its
	// tag there (a one-bit phase cannot tell phases two apart).
	before := sessionState(t, r.b)
	if _, _, err := r.b.Open(r.relay(t, old)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("frame two phases old: %v", err)
	}
	if !bytes.Equal(sessionState(t, r.b), before) {
		t.Fatal("a refused old frame changed the session")
	}
}

// A lost answer: the initiator asks again (same key, new frame) and gets the
// identical answer frame, which completes the rekey.
func TestSessionRekeyLostAnswer(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 1)
	ask, _ := r.a.StartRekey(seeded(80))
	pt, _, _ := r.b.Open(r.relay(t, ask))
	lost, err := r.b.AnswerRekey(seeded(81), pt)
	if err != nil {
		t.Fatal(err)
	}
	// The initiator restarts from its persisted state while waiting.
	a2, err := ParseSession(sessionState(t, r.a))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a2.StartRekey(seeded(82))
	pt, _, err = r.b.Open(r.relay(t, again))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := r.b.AnswerRekey(seeded(83), pt)
	if err != nil || !bytes.Equal(ans, lost) {
		t.Fatalf("repeated request: %v, same answer %v", err, bytes.Equal(ans, lost))
	}
	pt, _, err = a2.Open(r.relay(t, ans))
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.FinishRekey(pt); err != nil {
		t.Fatal(err)
	}
	if err := a2.FinishRekey(pt); !errors.Is(err, ErrReplay) {
		t.Fatalf("answer twice: %v", err)
	}
	f, _ := a2.Seal(false, []byte("x"))
	if _, _, err := r.b.Open(r.relay(t, f)); err != nil {
		t.Fatalf("after a rekey with a lost answer: %v", err)
	}
}

// Attack: a passive attacker who copied a node's session state before a
// rekey cannot open frames sealed after it.
func TestAttackSessionStateStolenBeforeRekey(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 1)
	stolen, err := ParseSession(sessionState(t, r.b))
	if err != nil {
		t.Fatal(err)
	}
	r.rekey(t, 90)
	f, _ := r.a.Seal(false, []byte("after the rekey"))
	f = r.relay(t, f)
	if _, _, err := stolen.Open(f); err == nil {
		t.Fatal("stolen pre-rekey state opened a post-rekey frame")
	}
	if _, _, err := r.b.Open(f); err != nil {
		t.Fatal(err)
	}
}

// Attack: malformed or misdirected rekey messages are refused and change
// nothing.
func TestAttackSessionBadRekey(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 1)
	if _, err := r.b.StartRekey(seeded(1)); err == nil {
		t.Fatal("responder started a rekey")
	}
	if err := r.a.FinishRekey(append([]byte{SessionCtlRekeyAnswer}, make([]byte, 32)...)); !errors.Is(err, ErrReplay) {
		t.Fatalf("answer without a request: %v", err)
	}
	before := sessionState(t, r.b)
	for _, pt := range [][]byte{
		{SessionCtlRekeyAsk},
		append([]byte{SessionCtlRekeyAnswer}, make([]byte, 32)...),
		append([]byte{SessionCtlRekeyAsk}, make([]byte, 32)...), // low-order point
		append([]byte{SessionCtlRekeyAsk}, make([]byte, 33)...),
	} {
		if _, err := r.b.AnswerRekey(seeded(2), pt); err == nil {
			t.Fatalf("rekey request %x answered", pt)
		}
	}
	if !bytes.Equal(sessionState(t, r.b), before) {
		t.Fatal("refused rekey requests changed the session")
	}
}
