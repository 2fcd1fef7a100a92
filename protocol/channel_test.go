package protocol

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"
)

func chanKey(t testing.TB, seed byte) ChannelKey {
	t.Helper()
	k, err := NewChannelKey(seeded(0x80 + seed)) // apart from the seeds of message IDs and identities
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func chanSeal(t testing.TB, r io.Reader, key ChannelKey, hopLimit uint8, body []byte, signer *Identity) []byte {
	t.Helper()
	frame, err := SealChannel(r, key, hopLimit, testNow, body, signer)
	if err != nil {
		t.Fatalf("SealChannel: %v", err)
	}
	return frame
}

// chanReferenceSeal builds a channel frame straight from the primitives, as
// the ChannelFrame doc comment describes it, independently of SealChannel.
// plaintext is what gets encrypted (for a signed frame: sender block ||
// body), so tests can also build frames SealChannel refuses to make.
func chanReferenceSeal(t testing.TB, key ChannelKey, kind Kind, hops byte, msgID [6]byte, plaintext []byte) []byte {
	t.Helper()
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("meshd/channel-id/v1"))
	id := m.Sum(nil)[:4]
	sent := binary.BigEndian.AppendUint32(nil, uint32(testNow.Unix()))
	info := "meshd/channel/v2" + string([]byte{byte(kind)}) + string(msgID[:]) + string(sent)
	okm, err := hkdf.Key(sha256.New, key[:], id, info, 64)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chacha20.NewUnauthenticatedCipher(okm[:32], make([]byte, 12))
	if err != nil {
		t.Fatal(err)
	}
	ct := make([]byte, len(plaintext))
	c.XORKeyStream(ct, plaintext)
	mac := hmac.New(sha256.New, okm[32:])
	mac.Write([]byte{byte(kind), hops >> 4})
	mac.Write(id)
	mac.Write(msgID[:])
	mac.Write(sent)
	mac.Write(ct)
	tag := mac.Sum(nil)[:8]

	var out []byte
	out = append(out, byte(kind), hops)
	out = append(out, id...)
	out = append(out, msgID[:]...)
	out = append(out, sent...)
	out = append(out, ct...)
	return append(out, tag...)
}

// chanSenderBlock returns compact identity || signature over channel ID ||
// message ID || time || hop limit || body, as a signed frame's plaintext
// starts (the time is testNow).
func chanSenderBlock(signer *Identity, id ChannelID, msgID [6]byte, hopLimit byte, body []byte) []byte {
	msg := append(append([]byte{}, id[:]...), msgID[:]...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(testNow.Unix()))
	msg = append(append(msg, hopLimit), body...)
	b := signer.Compact().appendTo(nil)
	return append(b, signer.signLabelled("meshd/channel-sig/v2", msg)...)
}

func chanBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestChannelKeyID(t *testing.T) {
	k1, k2 := chanKey(t, 1), chanKey(t, 2)
	if k1 == k2 {
		t.Fatal("different seeds gave the same key")
	}
	if k1 != chanKey(t, 1) {
		t.Fatal("same seed gave different keys")
	}
	if k1.ID() == k2.ID() {
		t.Fatal("different keys gave the same ID")
	}
	m := hmac.New(sha256.New, k1[:])
	m.Write([]byte("meshd/channel-id/v1"))
	want := m.Sum(nil)[:4]
	id := k1.ID()
	if !bytes.Equal(id[:], want) {
		t.Fatalf("ID = %x, want %x", id, want)
	}
	if s := id.String(); s != hex.EncodeToString(want) || len(s) != 8 {
		t.Fatalf("String = %q", s)
	}
	if _, err := NewChannelKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("NewChannelKey with 31 bytes of randomness: no error")
	}
}

func TestChannelRoundTrip(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	tests := []struct {
		name     string
		bodyLen  int
		signed   bool
		hopLimit uint8
	}{
		{"unsigned/empty", 0, false, 1},
		{"unsigned/one", 1, false, 3},
		{"unsigned/100", 100, false, 7},
		{"unsigned/lora", 255 - ChannelOverhead, false, 15},
		{"unsigned/max", MaxChannelFrameSize - ChannelOverhead, false, 4},
		{"signed/empty", 0, true, 1},
		{"signed/100", 100, true, 5},
		{"signed/lora", 255 - ChannelSignedOverhead, true, 15},
		{"signed/max", MaxChannelFrameSize - ChannelSignedOverhead, true, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := chanBody(tt.bodyLen)
			var s *Identity
			wantKind, overhead := KindChannel, ChannelOverhead
			if tt.signed {
				s, wantKind, overhead = signer, KindChannelSigned, ChannelSignedOverhead
			}
			raw := chanSeal(t, seeded(byte(i)), key, tt.hopLimit, body, s)
			if len(raw) != len(body)+overhead {
				t.Fatalf("frame is %d bytes for a %d-byte body, want overhead %d", len(raw), len(body), overhead)
			}
			f, err := ParseChannelFrame(raw)
			if err != nil {
				t.Fatalf("ParseChannelFrame: %v", err)
			}
			if f.Kind != wantKind || f.HopLimit != tt.hopLimit || f.HopCount != 0 || f.Channel != key.ID() {
				t.Fatalf("frame header = %v %d/%d %v", f.Kind, f.HopCount, f.HopLimit, f.Channel)
			}
			if got := f.AppendTo(nil); !bytes.Equal(got, raw) {
				t.Fatal("AppendTo does not reproduce the parsed bytes")
			}
			msg, err := f.Open(key)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(msg.Body, body) {
				t.Fatal("body differs after the round trip")
			}
			if msg.Signed != tt.signed {
				t.Fatalf("Signed = %v", msg.Signed)
			}
			if tt.signed {
				if msg.Sender != signer.Compact() || msg.From != signer.Address() {
					t.Fatalf("sender = %v, want %v", msg.From, signer.Address())
				}
			} else if msg.Sender != (CompactIdentity{}) || !msg.From.IsZero() {
				t.Fatal("unsigned message has a sender")
			}
		})
	}
}

func TestChannelSealErrors(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	tests := []struct {
		name     string
		rand     *bytes.Reader
		hopLimit uint8
		bodyLen  int
		signer   *Identity
		want     error
	}{
		{"hop limit 0", nil, 0, 10, nil, ErrMalformed},
		{"hop limit 16", nil, 16, 10, nil, ErrMalformed},
		{"hop limit 255", nil, 255, 10, signer, ErrMalformed},
		{"unsigned too large", nil, 3, MaxChannelFrameSize - ChannelOverhead + 1, nil, ErrTooLarge},
		{"signed too large", nil, 3, MaxChannelFrameSize - ChannelSignedOverhead + 1, signer, ErrTooLarge},
		{"zero identity", nil, 3, 10, &Identity{}, ErrMalformed},
		{"short randomness", bytes.NewReader(make([]byte, 5)), 3, 10, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.rand != nil {
				_, err = SealChannel(tt.rand, key, tt.hopLimit, testNow, chanBody(tt.bodyLen), tt.signer)
			} else {
				_, err = SealChannel(seeded(1), key, tt.hopLimit, testNow, chanBody(tt.bodyLen), tt.signer)
			}
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestChannelOverheadBudget holds the encoder to the goal for constrained
// links: an authenticated channel frame costs at most 24 bytes with a MAC of
// at least 8 bytes.
func TestChannelOverheadBudget(t *testing.T) {
	if ChannelOverhead != 24 {
		t.Fatalf("ChannelOverhead = %d, the format says 24", ChannelOverhead)
	}
	if ChannelTagSize < 8 {
		t.Fatalf("tag is %d bytes, the goal wants at least 8", ChannelTagSize)
	}
	key := chanKey(t, 1)
	for _, n := range []int{0, 1, 16, 100, 233} {
		body := chanBody(n)
		raw := chanSeal(t, seeded(1), key, 3, body, nil)
		overhead := len(raw) - len(body)
		if overhead != ChannelOverhead || overhead > 24 {
			t.Fatalf("%d-byte body: overhead %d bytes, want %d (goal <= 24)", n, overhead, ChannelOverhead)
		}
		f, err := ParseChannelFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Tag) < 8 {
			t.Fatalf("tag of %d bytes", len(f.Tag))
		}
	}
}

// TestChannelReference checks SealChannel against a reimplementation of the
// documented construction from the primitives, and pins one frame so a
// format change cannot go unnoticed.
func TestChannelReference(t *testing.T) {
	var key ChannelKey
	for i := range key {
		key[i] = byte(i)
	}
	msgID := [6]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5}
	body := []byte("hello, mesh")
	signer := testIdentity(t, 1)

	got, err := SealChannel(bytes.NewReader(msgID[:]), key, 5, testNow, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := chanReferenceSeal(t, key, KindChannel, 0x50, msgID, body)
	if !bytes.Equal(got, want) {
		t.Fatalf("unsigned frame\n got %x\nwant %x", got, want)
	}
	// Also computed independently with Python's cryptography package (HKDF,
	// ChaCha20 with a zero counter and nonce) and hmac/hashlib.
	const pinned = "2550766309cca0a1a2a3a4a56b06cdc0b77843b07de26b96ce9a18165bfe6400dcae4f"
	if hex.EncodeToString(got) != pinned {
		t.Fatalf("unsigned frame changed:\n got %x\nwant %s", got, pinned)
	}

	got, err = SealChannel(bytes.NewReader(msgID[:]), key, 15, testNow, body, signer)
	if err != nil {
		t.Fatal(err)
	}
	plain := append(chanSenderBlock(signer, key.ID(), msgID, 15, body), body...)
	want = chanReferenceSeal(t, key, KindChannelSigned, 0xf0, msgID, plain)
	if !bytes.Equal(got, want) {
		t.Fatalf("signed frame\n got %x\nwant %x", got, want)
	}
}

func TestChannelDeterministic(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	body := chanBody(50)
	for _, s := range []*Identity{nil, signer} {
		a := chanSeal(t, seeded(9), key, 3, body, s)
		b := chanSeal(t, seeded(9), key, 3, body, s)
		c := chanSeal(t, seeded(10), key, 3, body, s)
		if !bytes.Equal(a, b) {
			t.Fatalf("signed=%v: same seed, different frames", s != nil)
		}
		if bytes.Equal(a, c) {
			t.Fatalf("signed=%v: different seeds, same frame", s != nil)
		}
	}
	// Successive frames from one reader get distinct message IDs.
	r := seeded(9)
	f1, _ := ParseChannelFrame(chanSeal(t, r, key, 3, body, nil))
	f2, _ := ParseChannelFrame(chanSeal(t, r, key, 3, body, nil))
	if f1.MessageID == f2.MessageID || f1.DedupKey() == f2.DedupKey() {
		t.Fatal("two frames share a message ID")
	}
}

func TestChannelDedupKey(t *testing.T) {
	key := chanKey(t, 1)
	f, err := ParseChannelFrame(chanSeal(t, seeded(1), key, 3, []byte("x"), nil))
	if err != nil {
		t.Fatal(err)
	}
	k := f.DedupKey()
	id := key.ID()
	if !bytes.Equal(k[:4], id[:]) || !bytes.Equal(k[4:10], f.MessageID[:]) ||
		binary.BigEndian.Uint32(k[10:]) != uint32(testNow.Unix()) || !f.Sent().Equal(testNow.Truncate(time.Second)) {
		t.Fatalf("DedupKey = %x", k)
	}
	// Forwarding does not change the dedup key.
	raw := f.AppendTo(nil)
	if err := IncrementChannelHops(raw); err != nil {
		t.Fatal(err)
	}
	g, err := ParseChannelFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	if g.DedupKey() != k {
		t.Fatal("DedupKey changed with the hop count")
	}
}

// TestChannelTamper flips every bit outside the hops byte: the frame must
// then fail to parse or fail to open.
func TestChannelTamper(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	frames := map[string][]byte{
		"unsigned/empty": chanSeal(t, seeded(1), key, 3, nil, nil),
		"unsigned/20":    chanSeal(t, seeded(2), key, 3, chanBody(20), nil),
		"signed/empty":   chanSeal(t, seeded(3), key, 3, nil, signer),
		"signed/20":      chanSeal(t, seeded(4), key, 3, chanBody(20), signer),
	}
	for name, raw := range frames {
		t.Run(name, func(t *testing.T) {
			for i := range raw {
				if i == 1 {
					continue
				}
				for bit := range 8 {
					mut := bytes.Clone(raw)
					mut[i] ^= 1 << bit
					f, err := ParseChannelFrame(mut)
					if i == 0 {
						if !errors.Is(err, ErrUnknownKind) {
							t.Fatalf("kind bit %d: parse err = %v, want ErrUnknownKind", bit, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("byte %d bit %d: parse: %v", i, bit, err)
					}
					want := ErrDecrypt
					if i >= 2 && i < 6 {
						want = ErrNotForUs
					}
					if _, err := f.Open(key); !errors.Is(err, want) {
						t.Fatalf("byte %d bit %d: open err = %v, want %v", i, bit, err, want)
					}
				}
			}
		})
	}
}

// TestChannelKindSwap relabels a frame as the other channel kind: the kind
// is authenticated and keys the derivation, so it must not open.
func TestChannelKindSwap(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	for _, raw := range [][]byte{
		chanSeal(t, seeded(1), key, 3, chanBody(200), nil),
		chanSeal(t, seeded(2), key, 3, chanBody(20), signer),
	} {
		mut := bytes.Clone(raw)
		mut[0] ^= byte(KindChannel ^ KindChannelSigned)
		f, err := ParseChannelFrame(mut)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Open(key); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("kind %v relabelled %v: err = %v, want ErrDecrypt", Kind(raw[0]), f.Kind, err)
		}
	}
}

// TestChannelHopsByte flips every bit of the hops byte: the result fails to
// parse, or changes only the hops; a changed hop count (bits 3-0) still
// opens, a changed hop limit (bits 7-4, authenticated) does not.
func TestChannelHopsByte(t *testing.T) {
	key := chanKey(t, 1)
	signer := testIdentity(t, 1)
	body := chanBody(30)
	for _, s := range []*Identity{nil, signer} {
		raw := chanSeal(t, seeded(1), key, 6, body, s)
		if err := IncrementChannelHops(raw); err != nil { // hops 0x61
			t.Fatal(err)
		}
		orig, err := ParseChannelFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		for bit := range 8 {
			mut := bytes.Clone(raw)
			mut[1] ^= 1 << bit
			limit, count := mut[1]>>4, mut[1]&0x0f
			f, err := ParseChannelFrame(mut)
			if limit == 0 || count > limit {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("hops 0x%02x: err = %v, want ErrMalformed", mut[1], err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("hops 0x%02x: %v", mut[1], err)
			}
			if f.HopLimit != limit || f.HopCount != count {
				t.Fatalf("hops 0x%02x parsed as %d/%d", mut[1], f.HopCount, f.HopLimit)
			}
			g := *f
			g.HopLimit, g.HopCount = orig.HopLimit, orig.HopCount
			if !bytes.Equal(g.AppendTo(nil), raw) {
				t.Fatalf("hops 0x%02x changed more than the hops", mut[1])
			}
			msg, err := f.Open(key)
			if bit >= 4 {
				if !errors.Is(err, ErrDecrypt) {
					t.Fatalf("hop limit changed to %d: open err = %v, want ErrDecrypt", limit, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(msg.Body, body) {
				t.Fatalf("hops 0x%02x: open: %v", mut[1], err)
			}
		}
	}
}

func TestChannelWrongKey(t *testing.T) {
	k1, k2 := chanKey(t, 1), chanKey(t, 2)
	raw := chanSeal(t, seeded(1), k1, 3, []byte("secret"), nil)
	f, err := ParseChannelFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Open(k2); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("other channel: err = %v, want ErrNotForUs", err)
	}
	// A key whose ID collides with the frame's channel (as 32-bit IDs can)
	// still fails authentication.
	f.Channel = k2.ID()
	if _, err := f.Open(k2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("colliding channel ID: err = %v, want ErrDecrypt", err)
	}
}

// TestChannelBadSignature builds signed frames that authenticate under the
// channel key (as any member can make them) but whose inner signature is
// wrong.
func TestChannelBadSignature(t *testing.T) {
	key := chanKey(t, 1)
	alice, mallory := testIdentity(t, 1), testIdentity(t, 2)
	id := key.ID()
	msgID := [6]byte{1, 2, 3, 4, 5, 6}
	body := []byte("from alice")
	good := chanSenderBlock(alice, id, msgID, 3, body)

	flipSig := bytes.Clone(good)
	flipSig[CompactIdentitySize+3] ^= 0x10
	impostor := mallory.Compact().appendTo(nil)
	impostor = append(impostor, good[CompactIdentitySize:]...)

	tests := []struct {
		name  string
		plain []byte
		want  error
	}{
		{"valid", append(bytes.Clone(good), body...), nil},
		{"flipped signature bit", append(flipSig, body...), ErrBadSignature},
		{"other body", append(bytes.Clone(good), "from mallory"...), ErrBadSignature},
		{"other sender", append(impostor, body...), ErrBadSignature},
		{"other message ID", append(chanSenderBlock(alice, id, [6]byte{9}, 3, body), body...), ErrBadSignature},
		{"other channel", append(chanSenderBlock(alice, ChannelID{1, 2, 3, 4}, msgID, 3, body), body...), ErrBadSignature},
		{"other hop limit", append(chanSenderBlock(alice, id, msgID, 15, body), body...), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := chanReferenceSeal(t, key, KindChannelSigned, 0x30, msgID, tt.plain)
			f, err := ParseChannelFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := f.Open(key)
			if tt.want == nil {
				if err != nil || msg.From != alice.Address() || !bytes.Equal(msg.Body, body) {
					t.Fatalf("open = %v, %v", msg, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	// A frame built by hand (not parsed) with a signed kind and too short a
	// plaintext fails cleanly.
	raw := chanReferenceSeal(t, key, KindChannelSigned, 0x30, msgID, good[:100])
	f := &ChannelFrame{Kind: KindChannelSigned, HopLimit: 3, Channel: id, MessageID: msgID,
		Time: uint32(testNow.Unix()), Ciphertext: raw[16 : len(raw)-8]}
	copy(f.Tag[:], raw[len(raw)-8:])
	if _, err := f.Open(key); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short signed plaintext: err = %v, want ErrTruncated", err)
	}
	if _, err := ParseChannelFrame(raw); !errors.Is(err, ErrTruncated) {
		t.Fatalf("parse short signed frame: err = %v, want ErrTruncated", err)
	}
	f.Kind = KindEnvelope
	if _, err := f.Open(key); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("envelope kind: err = %v, want ErrUnknownKind", err)
	}
}

func TestChannelIncrementHops(t *testing.T) {
	key := chanKey(t, 1)
	body := []byte("flood me")
	for _, limit := range []uint8{1, 3, 15} {
		raw := chanSeal(t, seeded(limit), key, limit, body, nil)
		orig := bytes.Clone(raw)
		for want := uint8(1); want <= limit; want++ {
			if err := IncrementChannelHops(raw); err != nil {
				t.Fatalf("limit %d, hop %d: %v", limit, want, err)
			}
			f, err := ParseChannelFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			if f.HopCount != want || f.HopLimit != limit {
				t.Fatalf("hops %d/%d, want %d/%d", f.HopCount, f.HopLimit, want, limit)
			}
			if msg, err := f.Open(key); err != nil || !bytes.Equal(msg.Body, body) {
				t.Fatalf("open after %d hops: %v", want, err)
			}
			if !bytes.Equal(raw[:1], orig[:1]) || !bytes.Equal(raw[2:], orig[2:]) {
				t.Fatal("IncrementChannelHops changed more than the hops byte")
			}
		}
		before := bytes.Clone(raw)
		if err := IncrementChannelHops(raw); !errors.Is(err, ErrHopLimit) {
			t.Fatalf("limit %d: at the limit err = %v, want ErrHopLimit", limit, err)
		}
		if !bytes.Equal(raw, before) {
			t.Fatal("a refused increment changed the frame")
		}
	}

	valid := chanSeal(t, seeded(1), key, 3, nil, nil)
	with := func(i int, v byte) []byte { b := bytes.Clone(valid); b[i] = v; return b }
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"nil", nil, ErrTruncated},
		{"short", valid[:ChannelOverhead-1], ErrTruncated},
		{"too large", make([]byte, MaxChannelFrameSize+1), ErrTooLarge},
		{"envelope kind", with(0, byte(KindEnvelope)), ErrUnknownKind},
		{"limit 0", with(1, 0x00), ErrMalformed},
		{"count above limit", with(1, 0x24), ErrMalformed},
		{"count 15 limit 14", with(1, 0xef), ErrMalformed},
		{"at limit", with(1, 0x33), ErrHopLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := IncrementChannelHops(tt.frame); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// chanParseCases are malformed frames with the error ParseChannelFrame must
// report; they also seed the fuzzer.
func chanParseCases(t testing.TB) []struct {
	name  string
	frame []byte
	want  error
} {
	key := chanKey(t, 1)
	valid := chanSeal(t, seeded(1), key, 3, chanBody(10), nil)
	signed := chanSeal(t, seeded(2), key, 3, chanBody(10), testIdentity(t, 1))
	with := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	return []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindChannel)}, ErrTruncated},
		{"header only", valid[:channelHeaderSize], ErrTruncated},
		{"no ciphertext, short tag", valid[:ChannelOverhead-1], ErrTruncated},
		{"kind 0x00", with(valid, 0, 0x00), ErrUnknownKind},
		{"kind envelope", with(valid, 0, byte(KindEnvelope)), ErrUnknownKind},
		{"kind lite data", with(valid, 0, byte(KindLiteData)), ErrUnknownKind},
		{"kind fragment", with(valid, 0, byte(KindFragment)), ErrUnknownKind},
		{"kind 0xff", with(valid, 0, 0xff), ErrUnknownKind},
		{"v1 kind 0x15", with(valid, 0, 0x15), ErrUnknownKind},
		{"v1 kind 0x16", with(signed, 0, 0x16), ErrUnknownKind},
		{"hop limit 0", with(valid, 1, 0x00), ErrMalformed},
		{"hop limit 0 count 1", with(valid, 1, 0x01), ErrMalformed},
		{"hop count above limit", with(valid, 1, 0x34), ErrMalformed},
		{"hop count 15 limit 1", with(valid, 1, 0x1f), ErrMalformed},
		{"signed, short plaintext", signed[:ChannelSignedOverhead-1], ErrTruncated},
		{"signed relabelled unsigned-size", with(valid, 0, byte(KindChannelSigned)), ErrTruncated},
		{"too large", append([]byte{byte(KindChannel), 0x30}, make([]byte, MaxChannelFrameSize-1)...), ErrTooLarge},
	}
}

func TestParseChannelFrameErrors(t *testing.T) {
	for _, tt := range chanParseCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseChannelFrame(tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if f != nil {
				t.Fatal("frame returned with an error")
			}
		})
	}
}

// TestChannelTruncated cuts frames at every length: a prefix either fails to
// parse with ErrTruncated or (when it still has room for a tag) fails to
// open.
func TestChannelTruncated(t *testing.T) {
	key := chanKey(t, 1)
	for _, s := range []*Identity{nil, testIdentity(t, 1)} {
		raw := chanSeal(t, seeded(1), key, 3, chanBody(40), s)
		minLen := ChannelOverhead
		if s != nil {
			minLen = ChannelSignedOverhead
		}
		for n := range len(raw) {
			f, err := ParseChannelFrame(raw[:n])
			if n < minLen {
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("signed=%v, %d of %d bytes: err = %v, want ErrTruncated", s != nil, n, len(raw), err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("signed=%v, %d bytes: %v", s != nil, n, err)
			}
			if _, err := f.Open(key); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("signed=%v, %d bytes: open err = %v, want ErrDecrypt", s != nil, n, err)
			}
		}
		// An extra byte is more ciphertext to the parser, which the tag rejects.
		f, err := ParseChannelFrame(append(bytes.Clone(raw), 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Open(key); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("appended byte: open err = %v, want ErrDecrypt", err)
		}
	}
}

// chanFuzzKey is the key the fuzzer opens frames with; the seed corpus has
// valid frames under it so mutations reach the cryptography.
func chanFuzzKey() ChannelKey {
	var k ChannelKey
	for i := range k {
		k[i] = byte(0x80 + i)
	}
	return k
}

func FuzzParseChannelFrame(f *testing.F) {
	key := chanFuzzKey()
	signer := testIdentity(f, 1)
	for i, n := range []int{0, 1, 30, 200} {
		f.Add(chanSeal(f, seeded(byte(i)), key, 3, chanBody(n), nil))
		f.Add(chanSeal(f, seeded(byte(i)), key, 15, chanBody(n), signer))
	}
	for _, tt := range chanParseCases(f) {
		if len(tt.frame) <= 4096 {
			f.Add(tt.frame)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, err := ParseChannelFrame(b)
		hopsErr := IncrementChannelHops(bytes.Clone(b))
		if err != nil {
			if frame != nil {
				t.Fatal("frame returned with an error")
			}
			return
		}
		if hopsErr != nil && !errors.Is(hopsErr, ErrHopLimit) {
			t.Fatalf("parsed, but IncrementChannelHops: %v", hopsErr)
		}
		enc := frame.AppendTo(nil)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
		again, err := ParseChannelFrame(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(again, frame) {
			t.Fatal("re-parsed frame differs")
		}
		msg, err := frame.Open(key)
		if err != nil {
			return
		}
		if msg.Signed != (frame.Kind == KindChannelSigned) {
			t.Fatal("Signed does not match the kind")
		}
		if msg.Signed && msg.From != msg.Sender.Address() {
			t.Fatal("From does not match Sender")
		}
	})
}

func BenchmarkChannelSeal(b *testing.B) {
	key := chanKey(b, 1)
	signer := testIdentity(b, 1)
	body := chanBody(100)
	for _, bc := range []struct {
		name   string
		signer *Identity
	}{{"unsigned", nil}, {"signed", signer}} {
		b.Run(bc.name, func(b *testing.B) {
			r := seeded(1)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := SealChannel(r, key, 3, testNow, body, bc.signer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkChannelOpen(b *testing.B) {
	key := chanKey(b, 1)
	signer := testIdentity(b, 1)
	body := chanBody(100)
	for _, bc := range []struct {
		name   string
		signer *Identity
	}{{"unsigned", nil}, {"signed", signer}} {
		b.Run(bc.name, func(b *testing.B) {
			raw := chanSeal(b, seeded(1), key, 3, body, bc.signer)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				f, err := ParseChannelFrame(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Open(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestChannelRaisedHopLimit is the attack of a forwarder that raises a
// frame's hop limit so it floods farther than its sender allowed: the hop
// limit is authenticated, so the next member refuses the frame.
func TestChannelRaisedHopLimit(t *testing.T) {
	key := chanKey(t, 1)
	for _, s := range []*Identity{nil, testIdentity(t, 1)} {
		raw := chanSeal(t, seeded(1), key, 3, chanBody(20), s)
		if err := IncrementChannelHops(raw); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []byte{4, 15} {
			mut := bytes.Clone(raw)
			mut[1] = limit<<4 | mut[1]&0x0f
			f, err := ParseChannelFrame(mut)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Open(key); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("signed=%v, hop limit raised to %d: open err = %v, want ErrDecrypt", s != nil, limit, err)
			}
		}
	}
}

// TestChannelCheckFresh pins the freshness window: at most maxAge old, at
// most skew ahead, both ends inclusive; the time is authenticated.
func TestChannelCheckFresh(t *testing.T) {
	key := chanKey(t, 1)
	raw := chanSeal(t, seeded(1), key, 3, chanBody(5), nil)
	f, err := ParseChannelFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	const age, skew = 30 * time.Minute, 10 * time.Minute
	for _, tt := range []struct {
		now  time.Duration // relative to the send time
		want error
	}{
		{0, nil}, {age, nil}, {age + time.Second, ErrExpired}, {-skew, nil},
		{-skew - time.Second, ErrFromFuture}, {-1000 * time.Hour, ErrFromFuture}, {1000 * time.Hour, ErrExpired},
	} {
		if err := f.CheckFresh(testNow.Add(tt.now), age, skew); !errors.Is(err, tt.want) && (err != nil || tt.want != nil) {
			t.Errorf("now = sent%+v: err = %v, want %v", tt.now, err, tt.want)
		}
	}
	// Re-dating a frame (to pass CheckFresh) breaks the tag.
	for i := 12; i < 16; i++ {
		mut := bytes.Clone(raw)
		mut[i] ^= 0x01
		g, err := ParseChannelFrame(mut)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Open(key); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("time byte %d changed: open err = %v, want ErrDecrypt", i, err)
		}
	}
	if _, err := SealChannel(seeded(1), key, 3, time.Unix(-1, 0), nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("seal before 1970: err = %v, want ErrMalformed", err)
	}
}
