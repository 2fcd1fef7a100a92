package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// sessionPair sets up a route session between alice (initiator) and bob
// across hops hops: the init reaches bob with receiver index hops, as the
// relays would have rewritten it.
type sessionRun struct {
	a, b      *Session
	initRaw   []byte
	acceptRaw []byte
	hops      uint8
}

func sessionPair(t testing.TB, m SessionMode, hops uint8) sessionRun {
	t.Helper()
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	p, in, err := StartSession(seeded(30), alice, bob.Public(), m, TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := SetSessionIndex(raw, hops); err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSessionInit(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, acc, err := AcceptSession(seeded(31), bob, parsed, testNow.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	accRaw, err := acc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := SetSessionIndex(accRaw, 0); err != nil {
		t.Fatal(err)
	}
	acc2, err := ParseSessionAccept(accRaw)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Complete(acc2)
	if err != nil {
		t.Fatal(err)
	}
	return sessionRun{a: a, b: b, initRaw: raw, acceptRaw: accRaw, hops: hops}
}

// relay rewrites a frame's receiver index as the relays of the path would
// until it reaches the other end.
func (r sessionRun) relay(t testing.TB, frame []byte) []byte {
	t.Helper()
	h, err := ParseSessionHop(frame)
	if err != nil {
		t.Fatal(err)
	}
	c := append([]byte(nil), frame...)
	end := r.hops
	if h.TowardsInitiator {
		end = 0
	}
	if err := SetSessionIndex(c, end); err != nil {
		t.Fatal(err)
	}
	return c
}

func sessionState(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSessionBothWays(t *testing.T) {
	for _, m := range []SessionMode{SessionModeX25519, SessionModeXWing} {
		for _, hops := range []uint8{1, 3, 5} {
			t.Run(fmt.Sprintf("mode%d/hops%d", m, hops), func(t *testing.T) {
				r := sessionPair(t, m, hops)
				if len(r.initRaw) != SessionInitSize(m) || len(r.acceptRaw) != SessionAcceptSize(m) {
					t.Fatalf("init %d / accept %d bytes", len(r.initRaw), len(r.acceptRaw))
				}
				if r.b.Remote() != testIdentity(t, 1).Compact() || r.a.Remote() != testIdentity(t, 2).Compact() {
					t.Fatal("the ends do not know each other")
				}
				if r.a.Index() != 0 || r.b.Index() != hops || !r.a.Initiator() || r.b.Initiator() {
					t.Fatal("session positions")
				}
				for i := 0; i < 4; i++ {
					msg := []byte(fmt.Sprintf("a->b %d", i))
					f, err := r.a.Seal(false, msg)
					if err != nil {
						t.Fatal(err)
					}
					got, ctl, err := r.b.Open(r.relay(t, f))
					if err != nil || ctl || !bytes.Equal(got, msg) {
						t.Fatalf("a->b %d: %v", i, err)
					}
					f, _ = r.b.Seal(true, []byte("ack"))
					got, ctl, err = r.a.Open(r.relay(t, f))
					if err != nil || !ctl || string(got) != "ack" {
						t.Fatalf("b->a %d: %v", i, err)
					}
				}
			})
		}
	}
}

// The whole on-air overhead of an application message in a data frame is
// at most 32 bytes (goal), with a 16-byte tag.
func TestSessionOverheadBudget(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 3)
	body := []byte("fifty bytes of application payload, more or less..")
	pt, err := AppendSessionMessage(nil, 1234, body)
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.a.Seal(false, pt)
	if err != nil {
		t.Fatal(err)
	}
	if over := len(f) - len(body); over != SessionMessageOverhead || over > 32 {
		t.Fatalf("overhead %d bytes, want %d <= 32", over, SessionMessageOverhead)
	}
	if SessionAcceptSize(SessionModeX25519) > 255 {
		t.Fatal("a LoRa accept does not fit one frame")
	}
}

// Attack: a data frame with any bit changed but the receiver index (which
// relays rewrite) is refused and changes nothing; the genuine frame still
// opens afterwards.
func TestAttackSessionForgedFrame(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 2)
	f, _ := r.a.Seal(false, []byte("genuine"))
	f = r.relay(t, f)
	before := sessionState(t, r.b)
	flipEachBit(f, nil, func(i int, c []byte) {
		if i/8 == 5 && i%8 < 6 {
			return // the receiver index: a different receiver, tested below
		}
		if _, _, err := r.b.Open(c); err == nil {
			t.Fatalf("bit %d flipped: frame accepted", i)
		}
		if !bytes.Equal(sessionState(t, r.b), before) {
			t.Fatalf("bit %d flipped: state changed", i)
		}
	})
	if pt, _, err := r.b.Open(f); err != nil || string(pt) != "genuine" {
		t.Fatalf("genuine frame after forgeries: %v", err)
	}
}

// Attack: replayed, reordered, out-of-window and truncated frames.
func TestAttackSessionReplayWindow(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 1)
	var frames [][]byte
	for i := 0; i < LiteReplayWindow+10; i++ {
		f, _ := r.a.Seal(false, []byte{byte(i)})
		frames = append(frames, r.relay(t, f))
	}
	last := frames[len(frames)-1]
	if _, _, err := r.b.Open(last); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.b.Open(last); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	inWindow := frames[len(frames)-5]
	if pt, _, err := r.b.Open(inWindow); err != nil || pt[0] != byte(len(frames)-5) {
		t.Fatalf("reordered frame within the window: %v", err)
	}
	if _, _, err := r.b.Open(inWindow); !errors.Is(err, ErrReplay) {
		t.Fatalf("reordered frame twice: %v", err)
	}
	if _, _, err := r.b.Open(frames[0]); !errors.Is(err, ErrReplay) {
		t.Fatalf("frame behind the window: %v", err)
	}
	before := sessionState(t, r.b)
	for n := 0; n < len(last); n++ {
		if _, _, err := r.b.Open(last[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	for i := 0; i < LiteMaxSkip+1; i++ {
		r.a.Seal(false, nil)
	}
	far, _ := r.a.Seal(false, []byte("far"))
	if _, _, err := r.b.Open(r.relay(t, far)); !errors.Is(err, ErrLimit) {
		t.Fatalf("frame beyond the skip bound: %v", err)
	}
	if !bytes.Equal(sessionState(t, r.b), before) {
		t.Fatal("refused frames changed the state")
	}
}

// Attack: on a shared medium the endpoint hears frames meant for the relay
// next to it; it must not act on them (the relay does), nor on frames going
// the other way.
func TestAttackSessionFrameForOtherHop(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 3)
	f, _ := r.a.Seal(false, []byte("for relay 1"))
	if _, _, err := r.b.Open(f); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("frame for relay 1 opened at the responder: %v", err)
	}
	g, _ := r.b.Seal(false, []byte("back"))
	if _, _, err := r.b.Open(r.relay(t, g)); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("own frame reflected: %v", err)
	}
	back := r.relay(t, f)
	back[5] |= hopTowardInitiator
	if _, _, err := r.a.Open(back); err == nil {
		t.Fatal("frame with its direction flipped opened at the initiator")
	}
}

// Attack (the hole of lite sessions, protocol.md section 5): an attacker
// that recorded the handshake and a frame, and later holds the responder's
// long-term keys, cannot open the frame: the keys also depend on the
// erased ephemeral secrets. The same attack on a lite session succeeds.
func TestAttackSessionRecordedHandshakeAndResponderKey(t *testing.T) {
	bob := testIdentity(t, 2)
	for _, m := range []SessionMode{SessionModeX25519, SessionModeXWing} {
		r := sessionPair(t, m, 2)
		f, _ := r.a.Seal(false, []byte("secret"))
		in, err := ParseSessionInit(r.initRaw)
		if err != nil {
			t.Fatal(err)
		}
		attacker, _, err := AcceptSession(seeded(99), bob, in, testNow.Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if pt, _, err := attacker.Open(r.relay(t, f)); err == nil {
			t.Fatalf("mode %d: recorded frame opened with the responder's key: %q", m, pt)
		}
	}
	// The lite session has the hole this closes.
	a, _, initRaw := litePair(t)
	f, _ := a.Seal([]byte("secret"))
	in, _ := ParseLiteInit(initRaw)
	attacker, err := AcceptLiteSession(bob, in, testNow.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attacker.Open(f); err != nil {
		t.Fatalf("lite: expected the known hole, got %v", err)
	}
}

// Attack: inits that are forged, tampered with, for someone else, stale or
// from the future are refused; cheap checks come first (a stale init with
// garbage KEM bytes is refused as stale, before any decapsulation).
func TestAttackSessionInitRefused(t *testing.T) {
	alice, bob, carol := testIdentity(t, 1), testIdentity(t, 2), testIdentity(t, 3)
	_, in, err := StartSession(seeded(40), alice, bob.Public(), SessionModeX25519, TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := in.MarshalBinary()
	accept := func(b []byte, id *Identity, now time.Time) error {
		p, err := ParseSessionInit(b)
		if err != nil {
			return err
		}
		_, _, err = AcceptSession(seeded(41), id, p, now, 0)
		return err
	}
	if err := accept(raw, carol, testNow); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("init for bob at carol: %v", err)
	}
	if err := accept(raw, bob, testNow.Add(11*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("stale init: %v", err)
	}
	if err := accept(raw, bob, testNow.Add(-11*time.Minute)); !errors.Is(err, ErrFromFuture) {
		t.Fatalf("init from the future: %v", err)
	}
	junk := append([]byte(nil), raw...)
	for i := 27; i < len(junk); i++ {
		junk[i] = 0xA5
	}
	if err := accept(junk, bob, testNow.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("stale junk init: %v, want the cheap refusal", err)
	}
	skip := map[int]bool{5: true} // the receiver index: relays change it
	flipEachBit(raw, skip, func(i int, c []byte) {
		if i%13 != 0 { // a sample: every decapsulation costs ~100 µs
			return
		}
		if err := accept(c, bob, testNow); err == nil {
			t.Fatalf("bit %d flipped: init accepted", i)
		}
	})
	if err := accept(raw, bob, testNow); err != nil {
		t.Fatalf("genuine init: %v", err)
	}
}

// Attack: an init whose sealed part was made with another identity's
// signature (a stolen identity block) fails the signature check.
func TestAttackSessionInitForgedSignature(t *testing.T) {
	alice, bob, mallory := testIdentity(t, 1), testIdentity(t, 2), testIdentity(t, 3)
	in := &SessionInit{Index: 1, Responder: bob.Address(), Mode: SessionModeX25519, Timestamp: TimestampOf(testNow), Label: PathLabel{1, 2, 3, 4}}
	eph, _ := ephemeralPublic(SessionModeX25519, [32]byte{7})
	var ss [32]byte
	if err := sealInit(seeded(42), mallory, bob.Public(), in, eph, &ss); err != nil {
		t.Fatal(err)
	}
	// Put alice's identity where mallory's is: the signature cannot match.
	head := in.header()
	receiver, _ := sealSuite.NewReceiver(bob.kem, append([]byte(labelSessionHPKE), head...))
	opener, _ := receiver.Setup(in.Enc[:])
	pt, err := opener.Open(in.Sealed, head)
	if err != nil {
		t.Fatal(err)
	}
	copy(pt, alice.Compact().appendTo(nil))
	sender, _ := sealSuite.NewSender(bob.Public().kem, append([]byte(labelSessionHPKE), head...))
	enc, sealer, _ := sender.Setup(seeded(43))
	copy(in.Enc[:], enc)
	in.Sealed, _ = sealer.Seal(pt, head)
	if _, _, err := AcceptSession(seeded(44), bob, in, testNow, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("init claiming alice, signed by mallory: %v", err)
	}
}

// Attack: a forged accept (wrong tag, low-order X25519 key, another label)
// does not complete the handshake and does not spoil it: the genuine accept
// still completes it, once.
func TestAttackSessionForgedAccept(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	p, in, err := StartSession(seeded(50), alice, bob.Public(), SessionModeX25519, TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	_, acc, err := AcceptSession(seeded(51), bob, in, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	acc.Index = 0
	forged := *acc
	forged.Tag[0] ^= 1
	if _, err := p.Complete(&forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("accept with a wrong tag: %v", err)
	}
	lowOrder := *acc
	lowOrder.Ephemeral = make([]byte, 32)
	if _, err := p.Complete(&lowOrder); !errors.Is(err, ErrMalformed) {
		t.Fatalf("accept with an all-zero X25519 key: %v", err)
	}
	other := *acc
	other.Label[0] ^= 1
	if _, err := p.Complete(&other); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("accept for another label: %v", err)
	}
	if _, err := p.Complete(acc); err != nil {
		t.Fatalf("genuine accept after forgeries: %v", err)
	}
	if _, err := p.Complete(acc); !errors.Is(err, ErrReplay) {
		t.Fatalf("accept replayed: %v", err)
	}
}

// Attack: a mode-2 init carrying an invalid X-Wing ephemeral key (ML-KEM
// coefficients out of range) is refused, not encapsulated to.
func TestAttackSessionBadEphemeralKey(t *testing.T) {
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	in := &SessionInit{Index: 1, Responder: bob.Address(), Mode: SessionModeXWing, Timestamp: TimestampOf(testNow), Label: PathLabel{9, 9, 9, 9}}
	bad := bytes.Repeat([]byte{0xFF}, KEMPublicKeySize)
	var ss [32]byte
	if err := sealInit(seeded(60), alice, bob.Public(), in, bad, &ss); err != nil {
		t.Fatal(err)
	}
	if _, _, err := AcceptSession(seeded(61), bob, in, testNow, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid ephemeral X-Wing key: %v", err)
	}
}

func TestSessionStateRoundTrip(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 2)
	var held [][]byte
	for i := 0; i < 6; i++ {
		f, _ := r.a.Seal(false, []byte{byte(i)})
		held = append(held, r.relay(t, f))
	}
	r.b.Open(held[5]) // frames 0..4 now wait in the skipped window
	for _, s := range []*Session{r.a, r.b} {
		raw := sessionState(t, s)
		back, err := ParseSession(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sessionState(t, back), raw) {
			t.Fatal("state does not round-trip")
		}
	}
	b2, _ := ParseSession(sessionState(t, r.b))
	if pt, _, err := b2.Open(held[2]); err != nil || pt[0] != 2 {
		t.Fatalf("skipped frame after restore: %v", err)
	}
	a2, _ := ParseSession(sessionState(t, r.a))
	f, _ := a2.Seal(false, []byte("after restart"))
	if pt, _, err := b2.Open(r.relay(t, f)); err != nil || string(pt) != "after restart" {
		t.Fatalf("frame from a restored sender: %v", err)
	}
	raw := sessionState(t, r.a)
	for _, c := range []struct {
		off int
		val byte
	}{{0, 1}, {1, 2}, {2, 5}, {2, 0}, {7, 1}, {188, 65}} {
		bad := append([]byte(nil), raw...)
		bad[c.off] = c.val
		if _, err := ParseSession(bad); err == nil {
			t.Fatalf("byte %d = %d accepted", c.off, c.val)
		}
	}
	if _, err := ParseSession(append(raw, 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestSessionAck(t *testing.T) {
	var a SessionAck
	for n := uint32(0); n < 5; n++ {
		if a.Covers(n) {
			t.Fatalf("the zero ack covers %d", n)
		}
	}
	got := map[uint32]bool{}
	for _, n := range []uint32{3, 1, 7, 70, 69, 200, 150, 199} {
		a.Add(n)
		got[n] = true
		for m := uint32(0); m < 300; m++ {
			high := a.Next - 1
			want := got[m] && m <= high && high-m <= 64
			if a.Covers(m) != want {
				t.Fatalf("after %d: counter %d: covers %v, want %v", n, m, a.Covers(m), want)
			}
		}
	}
	pt, _ := a.AppendBinary(nil)
	if len(pt) != SessionAckSize {
		t.Fatalf("ack is %d bytes", len(pt))
	}
	back, err := ParseSessionAck(pt)
	if err != nil || back != a {
		t.Fatalf("ack round trip: %v", err)
	}
	if _, err := ParseSessionAck(pt[:12]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short ack: %v", err)
	}
}

func TestSessionMessageNumber(t *testing.T) {
	pt, err := AppendSessionMessage(nil, MaxSessionNumber, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	n, body, err := ParseSessionMessage(pt)
	if err != nil || n != MaxSessionNumber || string(body) != "x" {
		t.Fatalf("%d %q %v", n, body, err)
	}
	if _, err := AppendSessionMessage(nil, MaxSessionNumber+1, nil); err == nil {
		t.Fatal("49-bit number accepted")
	}
	a, b := testIdentity(t, 1).Address(), testIdentity(t, 2).Address()
	if SessionMessageKey(a, 1) == SessionMessageKey(a, 2) || SessionMessageKey(a, 1) == SessionMessageKey(b, 1) {
		t.Fatal("message keys collide")
	}
}

func TestSessionReset(t *testing.T) {
	b := AppendSessionReset(nil, PathLabel{1, 2, 3, 4}, true, 2)
	h, err := ParseSessionReset(b)
	if err != nil || h.Label != (PathLabel{1, 2, 3, 4}) || !h.TowardsInitiator || h.Index != 2 || len(b) != SessionResetSize {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := ParseSessionReset(append(b, 0)); err == nil {
		t.Fatal("reset with a trailing byte accepted")
	}
	if _, err := ParseSessionReset(AppendSessionReset(nil, PathLabel{}, false, 1)); err == nil {
		t.Fatal("zero label accepted")
	}
}

// The state's encoding fills exactly the buffer it sizes, with and
// without skipped keys, a previous phase and a pending rekey.
func TestSessionStateSizeExact(t *testing.T) {
	r := sessionPair(t, SessionModeX25519, 1)
	check := func(s *Session) {
		t.Helper()
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != cap(b) || len(b) != s.stateSize() {
			t.Fatalf("state of %d bytes in a buffer of %d (size %d)", len(b), cap(b), s.stateSize())
		}
	}
	check(r.a)
	var frames [][]byte
	for range 5 {
		f, err := r.a.Seal(false, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if _, _, err := r.b.Open(frames[4]); err != nil {
		t.Fatal(err)
	}
	check(r.b) // four skipped keys
	ask, err := r.a.StartRekey(seeded(3))
	if err != nil {
		t.Fatal(err)
	}
	check(r.a) // pending rekey
	pt, _, err := r.b.Open(ask)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.AnswerRekey(seeded(4), pt); err != nil {
		t.Fatal(err)
	}
	check(r.b) // previous phase kept
}

// Open's plaintext is the caller's to keep (the routing engine delivers
// the message body without copying it): it aliases neither the frame nor
// anything the session reuses, in every mode, for frames in order and
// out of order (a skipped key).
func TestSessionOpenPlaintextOwned(t *testing.T) {
	for _, m := range []SessionMode{SessionModeX25519V2, SessionModeXWingV2, SessionModeX25519, SessionModeXWing} {
		r := sessionPair(t, m, 1)
		var frames [][]byte
		for i := range 3 {
			f, err := r.a.Seal(false, []byte{'m', byte(i), 'x', 'y'})
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, r.relay(t, f))
		}
		var pts [][]byte
		for _, i := range []int{0, 2, 1} {
			pt, _, err := r.b.Open(frames[i])
			if err != nil {
				t.Fatalf("mode %v frame %d: %v", m, i, err)
			}
			pts = append(pts, pt)
			for j := range frames[i] {
				frames[i][j] = 0xff
			}
		}
		for k, i := range []int{0, 2, 1} {
			if want := []byte{'m', byte(i), 'x', 'y'}; !bytes.Equal(pts[k], want) {
				t.Fatalf("mode %v frame %d: plaintext %q after the frames were overwritten, want %q", m, i, pts[k], want)
			}
		}
	}
}
