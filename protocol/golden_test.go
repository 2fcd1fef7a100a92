package protocol

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenVectors builds every format from fixed seeds. The bytes are
// committed under testdata/golden, so any change to an encoding or to the
// cryptography shows up as a failing test and must be made on purpose (run
// go test ./protocol -run Golden -update and review the diff).
func goldenVectors(t *testing.T) map[string][]byte {
	t.Helper()
	alice, bob := testIdentity(t, 1), testIdentity(t, 2)
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v := map[string][]byte{}
	v["identity"] = must(alice.MarshalBinary())
	v["public-identity"] = must(alice.Public().MarshalBinary())

	h := testHeader(bob.Address(), 1)
	h.WantReceipt = true
	e, err := SealEnvelope(seeded(9), alice, bob.Public(), h, []byte("golden sealed message"), SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v["envelope-sealed"] = must(e.MarshalBinary())
	e, err = SealEnvelope(seeded(10), alice, bob.Public(), testHeader(bob.Address(), 2), []byte("golden sealed sender"), SealOptions{SealedSender: true})
	if err != nil {
		t.Fatal(err)
	}
	v["envelope-sealed-sender"] = must(e.MarshalBinary())
	ch := testHeader(bob.Address(), 3)
	ch.Type = TypeFAPP
	e, err = SignEnvelope(alice, ch, []byte("golden clear payload"))
	if err != nil {
		t.Fatal(err)
	}
	v["envelope-clear"] = must(e.MarshalBinary())

	a, err := NewAnnounce(alice, AnnounceOptions{Capabilities: CapRelay | CapLoRa, Sequence: 7, Timestamp: TimestampOf(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	v["announce-compact"] = must(a.MarshalBinary())
	a, err = NewAnnounce(alice, AnnounceOptions{
		Capabilities: CapMailbox, Sequence: 8, Timestamp: TimestampOf(testNow), IncludeKEMKey: true,
		Hints: &Hints{PeerID: []byte("peer-id-bytes"), Addrs: [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x10, 0x01}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v["announce-full"] = must(a.MarshalBinary())
	v["receipt"] = must(NewReceipt(bob, EnvelopeKey(h.ID), TimestampOf(testNow)).MarshalBinary())

	s, in, err := StartLiteSession(seeded(5), alice, bob.Public(), TimestampOf(testNow))
	if err != nil {
		t.Fatal(err)
	}
	v["lite-init"] = must(in.MarshalBinary())
	v["lite-frame"] = must(s.Seal([]byte("golden lite frame")))
	v["lite-session"] = must(s.MarshalBinary())

	// Modes 1 and 2 (key schedule 2) keep the vectors they had before
	// schedule 3, under names ending in -v2: this version still accepts
	// them from older initiators.
	for _, m := range []SessionMode{SessionModeX25519V2, SessionModeXWingV2, SessionModeX25519, SessionModeXWing} {
		name := map[SessionMode]string{
			SessionModeX25519V2: "x25519-v2", SessionModeXWingV2: "xwing-v2", SessionModeX25519: "x25519", SessionModeXWing: "xwing",
		}[m]
		suffix := map[SessionMode]string{SessionModeX25519V2: "-v2", SessionModeX25519: ""}[m]
		p, in, err := StartSession(seeded(23), alice, bob.Public(), m, TimestampOf(testNow))
		if err != nil {
			t.Fatal(err)
		}
		_, acc, err := AcceptSession(seeded(24), bob, in, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		v["session-init-"+name] = must(in.MarshalBinary())
		v["session-accept-"+name] = must(acc.MarshalBinary())
		if m != SessionModeX25519 && m != SessionModeX25519V2 {
			continue
		}
		s, err := p.Complete(acc)
		if err != nil {
			t.Fatal(err)
		}
		msg := must(AppendSessionMessage(nil, 0x0123456789ab, []byte("golden session message")))
		v["session-frame"+suffix] = must(s.Seal(false, msg))
		v["session-ack"+suffix] = must(s.Seal(true, must(SessionAck{Next: 6, Below: 0b1011}.AppendBinary(nil))))
		v["session-state"+suffix] = must(s.MarshalBinary())
	}
	v["session-reset"] = AppendSessionReset(nil, PathLabel{0xc0, 0xc1, 0xc2, 0xc3}, true, 2)

	ck, err := NewChannelKey(seeded(20))
	if err != nil {
		t.Fatal(err)
	}
	v["channel-key"] = ck[:]
	v["channel"] = must(SealChannel(seeded(21), ck, 3, testNow, []byte("golden channel message"), nil))
	v["channel-signed"] = must(SealChannel(seeded(22), ck, 3, testNow, []byte("golden signed channel message"), alice))
	frags, err := Split(v["lite-init"], 255, 0x01020304)
	if err != nil {
		t.Fatal(err)
	}
	v["fragment-first"] = frags[0]
	v["fragment-last"] = frags[len(frags)-1]

	// Routing control frames, built from the vectors above.
	v["advert"] = AppendAdvert(nil, bob.Address(), 2, v["announce-compact"])
	v["hop"] = AppendHop(nil, bob.Address(), v["lite-frame"])
	v["path-request"] = PathRequest{
		ID: [8]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}, Target: bob.Address(),
		HopLimit: 5, HopCount: 1, WantKEMKey: true,
	}.AppendTo(nil)
	v["path-request-seqno"] = PathRequest{
		ID: [8]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7}, Target: bob.Address(),
		HopLimit: 8, HasSeqno: true, Seqno: 0x0000012c,
	}.AppendTo(nil)
	v["path-request-forwarder"] = PathRequest{
		ID: [8]byte{0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7}, Target: bob.Address(),
		HopLimit: 8, HopCount: 2, Forwarder: alice.Address(),
	}.AppendTo(nil)
	v["hop-ack"] = AppendHopAck(nil, h.ID)
	v["custody-offer"] = AppendCustodyOffer(nil, v["envelope-sealed"])
	v["custody-accept"] = AppendCustodyAccept(nil, h.ID, CustodyRefusedQuota)
	v["custody-offer-stamped"] = AppendStampedCustodyOffer(nil, OfferStamp{Bits: 16, Nonce: 0x0102030405060708}, v["envelope-sealed"])
	v["custody-answer-stamp"] = AppendCustodyStampAnswer(nil, h.ID, 16)
	return v
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	for name, got := range goldenVectors(t) {
		path := filepath.Join(dir, name+".hex")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(wrapHex(got)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create it)", name, err)
		}
		want, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed (%d bytes, golden %d); if intended, run with -update and review", name, len(got), len(want))
		}
	}
}

// TestGoldenDecode checks that the committed vectors decode, verify and open,
// independent of the encoders: they are what another implementation would
// test against.
func TestGoldenDecode(t *testing.T) {
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	alice, err := ParseIdentity(read("identity"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicIdentity(read("public-identity"))
	if err != nil || pub.Address() != alice.Address() {
		t.Fatalf("public identity: %v", err)
	}
	bob := testIdentity(t, 2)
	for name, body := range map[string]string{"envelope-sealed": "golden sealed message", "envelope-sealed-sender": "golden sealed sender"} {
		e, err := ParseEnvelope(read(name))
		if err != nil {
			t.Fatal(err)
		}
		op, err := e.Open(bob)
		if err != nil || string(op.Body) != body || op.From != alice.Address() {
			t.Fatalf("%s: %v", name, err)
		}
	}
	e, err := ParseEnvelope(read("envelope-clear"))
	if err != nil || e.VerifySignature() != nil {
		t.Fatalf("envelope-clear: %v", err)
	}
	for _, name := range []string{"announce-compact", "announce-full"} {
		a, err := ParseAnnounce(read(name))
		if err != nil || a.Verify(testNow, AnnouncePolicy{}) != nil || a.Address() != alice.Address() {
			t.Fatalf("%s: %v", name, err)
		}
	}
	rc, err := ParseReceipt(read("receipt"))
	if err != nil || rc.Verify(bob.Compact()) != nil {
		t.Fatalf("receipt: %v", err)
	}
	in, err := ParseLiteInit(read("lite-init"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := AcceptLiteSession(bob, in, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Open(read("lite-frame")); err != nil || string(pt) != "golden lite frame" {
		t.Fatalf("lite frame: %v", err)
	}
	if _, err := ParseLiteSession(read("lite-session")); err != nil {
		t.Fatal(err)
	}
	checkGoldenSessions(t, bob, read)
	var ck ChannelKey
	copy(ck[:], read("channel-key"))
	for name, body := range map[string]string{"channel": "golden channel message", "channel-signed": "golden signed channel message"} {
		f, err := ParseChannelFrame(read(name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := f.Open(ck)
		if err != nil || string(m.Body) != body || m.Signed != (name == "channel-signed") {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Signed && m.From != alice.Address() {
			t.Fatalf("%s: from %v", name, m.From)
		}
	}
	for _, name := range []string{"fragment-first", "fragment-last"} {
		if _, err := ParseFragment(read(name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	adv, err := ParseAdvert(read("advert"))
	if err != nil {
		t.Fatalf("advert: %v", err)
	}
	if adv.Forwarder != bob.Address() || adv.Metric != 2 || !bytes.Equal(adv.AnnounceRaw, read("announce-compact")) ||
		adv.Announce.Verify(testNow, AnnouncePolicy{}) != nil || adv.Announce.Address() != alice.Address() {
		t.Fatalf("advert: %+v", adv)
	}
	next, inner, err := ParseHop(read("hop"))
	if err != nil || next != bob.Address() || !bytes.Equal(inner, read("lite-frame")) {
		t.Fatalf("hop: %v, %v", next, err)
	}
	pr, err := ParsePathRequest(read("path-request"))
	if want := (PathRequest{
		ID: [8]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}, Target: bob.Address(),
		HopLimit: 5, HopCount: 1, WantKEMKey: true,
	}); err != nil || pr != want {
		t.Fatalf("path request: %+v, %v", pr, err)
	}
	pr, err = ParsePathRequest(read("path-request-seqno"))
	if want := (PathRequest{
		ID: [8]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7}, Target: bob.Address(),
		HopLimit: 8, HasSeqno: true, Seqno: 300,
	}); err != nil || pr != want {
		t.Fatalf("path request with seqno: %+v, %v", pr, err)
	}
	pr, err = ParsePathRequest(read("path-request-forwarder"))
	if want := (PathRequest{
		ID: [8]byte{0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7}, Target: bob.Address(),
		HopLimit: 8, HopCount: 2, Forwarder: alice.Address(),
	}); err != nil || pr != want {
		t.Fatalf("path request with forwarder: %+v, %v", pr, err)
	}
	sealed, err := ParseEnvelope(read("envelope-sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ParseHopAck(read("hop-ack")); err != nil || id != sealed.ID {
		t.Fatalf("hop ack: %v, %v", id, err)
	}
	offered, err := ParseCustodyOffer(read("custody-offer"))
	if err != nil {
		t.Fatalf("custody offer: %v", err)
	}
	if op, err := offered.Open(bob); err != nil || string(op.Body) != "golden sealed message" || op.From != alice.Address() {
		t.Fatalf("custody offer: open: %v", err)
	}
	if id, st, err := ParseCustodyAccept(read("custody-accept")); err != nil || id != sealed.ID || st != CustodyRefusedQuota {
		t.Fatalf("custody accept: %v %v, %v", id, st, err)
	}
	if e, s, err := ParseStampedCustodyOffer(read("custody-offer-stamped")); err != nil || e.ID != sealed.ID || s != (OfferStamp{Bits: 16, Nonce: 0x0102030405060708}) {
		t.Fatalf("stamped custody offer: %+v, %v", s, err)
	}
	if id, st, bits, err := ParseCustodyAnswer(read("custody-answer-stamp")); err != nil || id != sealed.ID || st != CustodyRefusedStamp || bits != 16 {
		t.Fatalf("stamp answer: %v %v %v, %v", id, st, bits, err)
	}
}

// checkGoldenSessions decodes the route session vectors of both key
// schedules (suffix "" for schedule 3, "-v2" for schedule 2): bob accepts
// each init (with the vectors' random source he answers with the same
// accept), and opens the data and ack frames.
func checkGoldenSessions(t *testing.T, bob *Identity, read func(string) []byte) {
	t.Helper()
	for _, suffix := range []string{"", "-v2"} {
		var s *Session
		for _, name := range []string{"xwing" + suffix, "x25519" + suffix} {
			s = acceptGoldenInit(t, bob, read, name)
		}
		if want := map[string]SessionMode{"": SessionModeX25519, "-v2": SessionModeX25519V2}[suffix]; s.Mode() != want {
			t.Fatalf("session-init-x25519%s: mode %d", suffix, s.Mode())
		}
		pt, ctl, err := s.Open(read("session-frame" + suffix))
		if err != nil || ctl {
			t.Fatalf("session frame%s: %v", suffix, err)
		}
		if n, body, err := ParseSessionMessage(pt); err != nil || n != 0x0123456789ab || string(body) != "golden session message" {
			t.Fatalf("session message%s: %v", suffix, err)
		}
		pt, ctl, err = s.Open(read("session-ack" + suffix))
		if err != nil || !ctl {
			t.Fatalf("session ack%s: %v", suffix, err)
		}
		if a, err := ParseSessionAck(pt); err != nil || a != (SessionAck{Next: 6, Below: 0b1011}) {
			t.Fatalf("session ack%s: %+v %v", suffix, a, err)
		}
		if _, err := ParseSession(read("session-state" + suffix)); err != nil {
			t.Fatalf("session state%s: %v", suffix, err)
		}
	}
	if h, err := ParseSessionReset(read("session-reset")); err != nil || h.Index != 2 || !h.TowardsInitiator {
		t.Fatalf("session reset: %+v %v", h, err)
	}
}

// acceptGoldenInit accepts the init vector name and checks the accept
// vector against the one bob answers with.
func acceptGoldenInit(t *testing.T, bob *Identity, read func(string) []byte, name string) *Session {
	t.Helper()
	in, err := ParseSessionInit(read("session-init-" + name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	s, acc, err := AcceptSession(seeded(24), bob, in, testNow, 0)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got, _ := acc.MarshalBinary(); !bytes.Equal(got, read("session-accept-"+name)) {
		t.Fatalf("%s: accept differs", name)
	}
	if _, err := ParseSessionAccept(read("session-accept-" + name)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func wrapHex(b []byte) string {
	s := hex.EncodeToString(b)
	var sb strings.Builder
	for len(s) > 64 {
		sb.WriteString(s[:64])
		sb.WriteByte('\n')
		s = s[64:]
	}
	sb.WriteString(s)
	sb.WriteByte('\n')
	return sb.String()
}
