package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// ctlAddr returns a deterministic non-zero address.
func ctlAddr(seed byte) Address {
	var a Address
	for i := range a {
		a[i] = seed + byte(i)*0x11
	}
	return a
}

func ctlMessageID(seed byte) MessageID { return MessageID(ctlAddr(seed)) }

// ctlCase is one input of a control frame decoder; want is nil for a valid
// frame. The tables seed the fuzz targets as well.
type ctlCase struct {
	name  string
	frame []byte
	want  error
}

// ctlCodec ties a decoder to its encoder: reencode parses b and encodes the
// result again.
type ctlCodec struct {
	name     string
	kind     Kind
	fixed    int // the exact size of a fixed-size frame, 0 if variable
	reencode func(b []byte) ([]byte, error)
	cases    func(tb testing.TB) []ctlCase
}

var ctlCodecs = []ctlCodec{
	{"advert", KindAdvert, 0, reencodeAdvert, advertCases},
	{"hop", KindHop, 0, reencodeHop, hopCases},
	{"path request", KindPathRequest, 0, reencodePathRequest, pathRequestCases},
	{"hop ack", KindHopAck, HopAckSize, reencodeHopAck, hopAckCases},
	{"custody offer", KindCustodyOffer, 0, reencodeCustodyOffer, custodyOfferCases},
	{"custody accept", KindCustodyAccept, CustodyAcceptSize, reencodeCustodyAccept, custodyAcceptCases},
}

func reencodeAdvert(b []byte) ([]byte, error) {
	a, err := ParseAdvert(b)
	if err != nil {
		return nil, err
	}
	return AppendAdvert(nil, a.Forwarder, a.Metric, a.AnnounceRaw), nil
}

func reencodeHop(b []byte) ([]byte, error) {
	next, inner, err := ParseHop(b)
	if err != nil {
		return nil, err
	}
	return AppendHop(nil, next, inner), nil
}

func reencodePathRequest(b []byte) ([]byte, error) {
	p, err := ParsePathRequest(b)
	if err != nil {
		return nil, err
	}
	return p.AppendTo(nil), nil
}

func reencodeHopAck(b []byte) ([]byte, error) {
	id, err := ParseHopAck(b)
	if err != nil {
		return nil, err
	}
	return AppendHopAck(nil, id), nil
}

func reencodeCustodyOffer(b []byte) ([]byte, error) {
	e, err := ParseCustodyOffer(b)
	if err != nil {
		return nil, err
	}
	raw, err := e.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("parsed envelope does not encode: %v", err)
	}
	return AppendCustodyOffer(nil, raw), nil
}

func reencodeCustodyAccept(b []byte) ([]byte, error) {
	id, st, err := ParseCustodyAccept(b)
	if err != nil {
		return nil, err
	}
	return AppendCustodyAccept(nil, id, st), nil
}

// ctlWith returns a copy of b with byte i set to v.
func ctlWith(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// ctlGolden returns the golden vectors. The fuzz targets, which have no
// *testing.T at hand, pass a fresh one, as addGolden does.
func ctlGolden(tb testing.TB) map[string][]byte {
	if t, ok := tb.(*testing.T); ok {
		return goldenVectors(t)
	}
	return goldenVectors(&testing.T{})
}

func advertCases(tb testing.TB) []ctlCase {
	v := ctlGolden(tb)
	compact, full := v["announce-compact"], v["announce-full"]
	fwd := ctlAddr(1)
	good := AppendAdvert(nil, fwd, 3, compact)
	badFlags := ctlWith(compact, 2, 0x04)
	return []ctlCase{
		{"compact", good, nil},
		{"full", AppendAdvert(nil, fwd, 0, full), nil},
		{"from the origin", AppendAdvert(nil, testIdentity(tb, 1).Address(), 0, compact), nil},
		{"retraction", AppendAdvert(nil, fwd, MetricInfinite, compact), nil},
		{"announce hop count 255", AppendAdvert(nil, fwd, 1, ctlWith(compact, 1, 0xff)), nil},
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindAdvert)}, ErrTruncated},
		{"short forwarder", good[:10], ErrTruncated},
		{"short metric", good[:AdvertHeaderSize-1], ErrTruncated},
		{"no announce", good[:AdvertHeaderSize], ErrTruncated},
		{"announce truncated", good[:len(good)-1], ErrTruncated},
		{"wrong kind", ctlWith(good, 0, byte(KindAnnounce)), ErrUnknownKind},
		{"unknown kind", ctlWith(good, 0, 0xff), ErrUnknownKind},
		{"zero forwarder", AppendAdvert(nil, Address{}, 3, compact), ErrMalformed},
		{"zero forwarder retraction", AppendAdvert(nil, Address{}, MetricInfinite, compact), ErrMalformed},
		{"announce with unknown flags", AppendAdvert(nil, fwd, 3, badFlags), ErrMalformed},
		{"envelope instead of announce", AppendAdvert(nil, fwd, 3, v["envelope-clear"]), ErrUnknownKind},
		{"advert in advert", AppendAdvert(nil, fwd, 3, good), ErrUnknownKind},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailing},
		{"too large", AppendAdvert(nil, fwd, 3, make([]byte, MaxAnnounceSize+1)), ErrTooLarge},
	}
}

func hopCases(tb testing.TB) []ctlCase {
	v := ctlGolden(tb)
	next := ctlAddr(2)
	cases := []ctlCase{
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindHop)}, ErrTruncated},
		{"short next hop", AppendHop(nil, next, nil)[:HopHeaderSize-1], ErrTruncated},
		{"no inner frame", AppendHop(nil, next, nil), ErrTruncated},
		{"wrong kind", ctlWith(AppendHop(nil, next, v["hop-ack"]), 0, byte(KindHopAck)), ErrUnknownKind},
		{"zero next hop", AppendHop(nil, Address{}, v["hop-ack"]), ErrMalformed},
		{"inner kind zero", AppendHop(nil, next, []byte{0}), ErrUnknownKind},
		{"inner kind unknown", AppendHop(nil, next, []byte{0xff, 1, 2, 3}), ErrUnknownKind},
		{"inner kind 0x2f", AppendHop(nil, next, []byte{0x2f}), ErrUnknownKind},
		{"nested hop", AppendHop(nil, next, v["hop"]), ErrMalformed},
		{"nested hop kind only", AppendHop(nil, next, []byte{byte(KindHop)}), ErrMalformed},
		{"inner fragment", AppendHop(nil, next, v["fragment-first"]), ErrMalformed},
		{"too large", AppendHop(nil, next, append([]byte{byte(KindEnvelope)}, make([]byte, MaxCustodyOfferSize)...)), ErrTooLarge},
		{"largest", AppendHop(nil, next, append([]byte{byte(KindCustodyOffer)}, make([]byte, MaxCustodyOfferSize-1)...)), nil},
		// The inner frame is not decoded: a kind byte alone is a valid hop frame.
		{"inner kind only", AppendHop(nil, next, []byte{byte(KindEnvelope)}), nil},
	}
	for _, name := range []string{
		"envelope-sealed", "announce-compact", "receipt", "lite-init", "lite-frame", "channel", "channel-signed",
		"advert", "path-request", "hop-ack", "custody-offer", "custody-accept",
	} {
		cases = append(cases, ctlCase{"inner " + name, AppendHop(nil, next, v[name]), nil})
	}
	return cases
}

func pathRequestCases(testing.TB) []ctlCase {
	p := PathRequest{ID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Target: ctlAddr(3), HopLimit: 7, HopCount: 2}
	good := p.AppendTo(nil)
	want := p
	want.WantKEMKey = true
	withKey := want.AppendTo(nil)
	var zeroID PathRequest
	zeroID.Target, zeroID.HopLimit = ctlAddr(3), 1
	seq := p
	seq.HasSeqno, seq.Seqno = true, 0x01020304
	withSeq := seq.AppendTo(nil)
	seq.WantKEMKey = true
	withSeqKey := seq.AppendTo(nil)
	seq.Seqno = 0
	seqZero := seq.AppendTo(nil)
	fw := p
	fw.Forwarder = ctlAddr(9)
	withFwd := fw.AppendTo(nil)
	fw.HasSeqno, fw.Seqno = true, 5
	withSeqFwd := fw.AppendTo(nil)
	const hops = pathRequestHopsOffset
	return []ctlCase{
		{"plain", good, nil},
		{"want KEM key", withKey, nil},
		{"seqno", withSeq, nil},
		{"seqno and KEM key", withSeqKey, nil},
		{"seqno 0", seqZero, nil},
		{"seqno flag without seqno", ctlWith(good, PathRequestSize-1, PathSeqno), ErrTruncated},
		{"seqno cut short", withSeq[:PathRequestSeqnoSize-1], ErrTruncated},
		{"seqno trailing byte", append(bytes.Clone(withSeq), 0), ErrTrailing},
		{"seqno without flag", ctlWith(withSeq, PathRequestSize-1, 0), ErrTrailing},
		{"forwarder", withFwd, nil},
		{"seqno and forwarder", withSeqFwd, nil},
		{"forwarder flag without forwarder", ctlWith(good, PathRequestSize-1, PathForwarder), ErrTruncated},
		{"forwarder cut short", withFwd[:len(withFwd)-1], ErrTruncated},
		{"forwarder trailing byte", append(bytes.Clone(withSeqFwd), 0), ErrTrailing},
		{"forwarder without flag", ctlWith(withFwd, PathRequestSize-1, 0), ErrTrailing},
		{"zero forwarder", append(ctlWith(good, PathRequestSize-1, PathForwarder), make([]byte, AddressSize)...), ErrMalformed},
		{"zero ID, limit 1", zeroID.AppendTo(nil), nil},
		{"limit 15 count 15", ctlWith(good, hops, 0xff), nil},
		{"limit 1 count 1", ctlWith(good, hops, 0x11), nil},
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindPathRequest)}, ErrTruncated},
		{"no flags", good[:PathRequestSize-1], ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailing},
		{"wrong kind", ctlWith(good, 0, byte(KindHopAck)), ErrUnknownKind},
		{"hop limit 0", ctlWith(good, hops, 0x00), ErrMalformed},
		{"hop limit 0 count 1", ctlWith(good, hops, 0x01), ErrMalformed},
		{"count over limit", ctlWith(good, hops, 0x34), ErrMalformed},
		{"count 15 over limit 14", ctlWith(good, hops, 0xef), ErrMalformed},
		{"flag bit 3", ctlWith(good, PathRequestSize-1, 0x08), ErrMalformed},
		{"flag bit 7", ctlWith(good, PathRequestSize-1, 0x81), ErrMalformed},
		{"all flags", ctlWith(good, PathRequestSize-1, 0xff), ErrMalformed},
		{"zero target", PathRequest{ID: p.ID, HopLimit: 3}.AppendTo(nil), ErrMalformed},
	}
}

func hopAckCases(testing.TB) []ctlCase {
	good := AppendHopAck(nil, ctlMessageID(4))
	return []ctlCase{
		{"ack", good, nil},
		{"zero ID", AppendHopAck(nil, MessageID{}), nil},
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindHopAck)}, ErrTruncated},
		{"short ID", good[:HopAckSize-1], ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailing},
		{"wrong kind", ctlWith(good, 0, byte(KindCustodyAccept)), ErrUnknownKind},
	}
}

func custodyOfferCases(tb testing.TB) []ctlCase {
	v := ctlGolden(tb)
	good := AppendCustodyOffer(nil, v["envelope-clear"])
	// An envelope whose hop count is over its limit (8).
	overHops := ctlWith(v["envelope-clear"], hopCountOffset, 9)
	return []ctlCase{
		{"clear", good, nil},
		{"sealed", AppendCustodyOffer(nil, v["envelope-sealed"]), nil},
		{"sealed sender", AppendCustodyOffer(nil, v["envelope-sealed-sender"]), nil},
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindCustodyOffer)}, ErrTruncated},
		{"envelope truncated", good[:len(good)-1], ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailing},
		{"wrong kind", ctlWith(good, 0, byte(KindEnvelope)), ErrUnknownKind},
		{"announce instead of envelope", AppendCustodyOffer(nil, v["announce-compact"]), ErrUnknownKind},
		{"nested offer", AppendCustodyOffer(nil, good), ErrUnknownKind},
		{"hop count over limit", AppendCustodyOffer(nil, overHops), ErrMalformed},
		{"too large", append([]byte{byte(KindCustodyOffer)}, make([]byte, MaxEnvelopeSize+1)...), ErrTooLarge},
	}
}

func custodyAcceptCases(testing.TB) []ctlCase {
	id := ctlMessageID(5)
	good := AppendCustodyAccept(nil, id, CustodyAccepted)
	return []ctlCase{
		{"accepted", good, nil},
		{"refused quota", AppendCustodyAccept(nil, id, CustodyRefusedQuota), nil},
		{"refused policy", AppendCustodyAccept(nil, id, CustodyRefusedPolicy), nil},
		{"empty", nil, ErrTruncated},
		{"kind only", []byte{byte(KindCustodyAccept)}, ErrTruncated},
		{"no status", good[:CustodyAcceptSize-1], ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailing},
		{"wrong kind", ctlWith(good, 0, byte(KindHopAck)), ErrUnknownKind},
		{"status 3", AppendCustodyAccept(nil, id, 3), ErrMalformed},
		{"status 0x80", AppendCustodyAccept(nil, id, 0x80), ErrMalformed},
		{"status 0xff", AppendCustodyAccept(nil, id, 0xff), ErrMalformed},
	}
}

// TestControlParse runs every table case: valid frames re-encode to the same
// bytes, invalid ones fail with the expected error class.
func TestControlParse(t *testing.T) {
	for _, c := range ctlCodecs {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range c.cases(t) {
				t.Run(tt.name, func(t *testing.T) {
					out, err := c.reencode(tt.frame)
					if tt.want != nil {
						if !errors.Is(err, tt.want) {
							t.Fatalf("err = %v, want %v", err, tt.want)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(out, tt.frame) {
						t.Fatalf("re-encoding differs:\n in  %x\n out %x", tt.frame, out)
					}
					if k, err := PeekKind(tt.frame); err != nil || k != c.kind {
						t.Fatalf("PeekKind = %v, %v", k, err)
					}
					if c.fixed != 0 && len(tt.frame) != c.fixed {
						t.Fatalf("%d bytes, want %d", len(tt.frame), c.fixed)
					}
				})
			}
		})
	}
}

// TestControlTruncated cuts every valid frame at every length: each prefix
// must fail with ErrTruncated. A hop frame does not decode its inner frame,
// so only its prefixes without an inner kind byte are truncated.
func TestControlTruncated(t *testing.T) {
	for _, c := range ctlCodecs {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range c.cases(t) {
				if tt.want != nil {
					continue
				}
				n := len(tt.frame)
				if c.kind == KindHop {
					n = HopHeaderSize + 1
				}
				for i := range n {
					if _, err := c.reencode(tt.frame[:i]); !errors.Is(err, ErrTruncated) {
						t.Fatalf("%s cut to %d of %d bytes: err = %v, want ErrTruncated", tt.name, i, len(tt.frame), err)
					}
				}
			}
		})
	}
}

// TestControlWrongKind puts every other first byte on every valid frame.
func TestControlWrongKind(t *testing.T) {
	for _, c := range ctlCodecs {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range c.cases(t) {
				if tt.want != nil {
					continue
				}
				for k := range 256 {
					if Kind(k) == c.kind {
						continue
					}
					if _, err := c.reencode(ctlWith(tt.frame, 0, byte(k))); !errors.Is(err, ErrUnknownKind) {
						t.Fatalf("%s as kind 0x%02x: err = %v, want ErrUnknownKind", tt.name, k, err)
					}
				}
			}
		})
	}
}

func TestControlKinds(t *testing.T) {
	for _, tt := range []struct {
		kind Kind
		val  byte
		name string
	}{
		{KindAdvert, 0x18, "advert"},
		{KindHop, 0x19, "hop"},
		{KindPathRequest, 0x1a, "path-request"},
		{KindHopAck, 0x1b, "hop-ack"},
		{KindCustodyOffer, 0x1c, "custody-offer"},
		{KindCustodyAccept, 0x1d, "custody-accept"},
		{KindExpiryNotice, 0x1e, "expiry-notice"},
		{KindCustodyOfferStamped, 0x1f, "custody-offer-stamped"},
	} {
		if byte(tt.kind) != tt.val || tt.kind.String() != tt.name || !tt.kind.Known() {
			t.Errorf("kind 0x%02x: value 0x%02x, String %q, Known %v", tt.val, byte(tt.kind), tt.kind, tt.kind.Known())
		}
	}
	if Kind(0x2f).Known() {
		t.Error("kind 0x2f is known")
	}
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{"AdvertHeaderSize", AdvertHeaderSize, 19},
		{"AdvertCompactSize", AdvertCompactSize, 160},
		{"HopHeaderSize", HopHeaderSize, 17},
		{"PathRequestSize", PathRequestSize, 27},
		{"PathRequestSeqnoSize", PathRequestSeqnoSize, 31},
		{"HopAckSize", HopAckSize, 17},
		{"CustodyAcceptSize", CustodyAcceptSize, 18},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, the format says %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestMaxHopSize checks that a hop frame can carry the largest frame of
// every kind it may carry. A new kind must be added here.
func TestMaxHopSize(t *testing.T) {
	largest := map[Kind]int{
		KindEnvelope:      MaxEnvelopeSize,
		KindAnnounce:      MaxAnnounceSize,
		KindReceipt:       ReceiptSize,
		KindLiteInit:      LiteInitSize,
		KindLiteData:      LiteOverhead + MaxLitePlaintext,
		KindChannel:       MaxChannelFrameSize,
		KindChannelSigned: MaxChannelFrameSize,
		KindAdvert:        MaxAdvertSize,
		KindPathRequest:   MaxPathRequestSize,
		KindHopAck:        HopAckSize,
		KindCustodyOffer:  MaxCustodyOfferSize,
		KindCustodyAccept: CustodyAcceptSize,
		KindExpiryNotice:  ExpiryNoticeSize,

		KindCustodyOfferStamped: MaxStampedOfferSize,

		KindSessionInit:   SessionInitSize(SessionModeXWing),
		KindSessionAccept: SessionAcceptSize(SessionModeXWing),
		KindSessionData:   SessionFrameOverhead + MaxSessionPlaintext,
		KindSessionReset:  SessionResetSize,
	}
	for k := range kindNames {
		if k == KindHop || k == KindFragment {
			continue
		}
		n, ok := largest[k]
		if !ok {
			t.Errorf("kind %v: no largest size in this test", k)
			continue
		}
		if HopHeaderSize+n > MaxHopSize {
			t.Errorf("kind %v: %d bytes do not fit a hop frame (MaxHopSize %d)", k, n, MaxHopSize)
		}
	}
}

func TestAdvertRoundTrip(t *testing.T) {
	v := goldenVectors(t)
	for _, name := range []string{"announce-compact", "announce-full"} {
		for _, metric := range []uint16{0, 1, 300, MetricInfinite - 1, MetricInfinite} {
			t.Run(fmt.Sprintf("%s/%d", name, metric), func(t *testing.T) {
				fwd := ctlAddr(7)
				prefix := []byte("xyz")
				b := AppendAdvert(bytes.Clone(prefix), fwd, metric, v[name])
				if !bytes.Equal(b[:3], prefix) {
					t.Fatal("AppendAdvert lost the prefix")
				}
				b = b[3:]
				if len(b) != AdvertHeaderSize+len(v[name]) {
					t.Fatalf("%d bytes", len(b))
				}
				if name == "announce-compact" && len(b) != AdvertCompactSize {
					t.Fatalf("compact advert of %d bytes, want %d", len(b), AdvertCompactSize)
				}
				a, err := ParseAdvert(b)
				if err != nil {
					t.Fatal(err)
				}
				if a.Forwarder != fwd || a.Metric != metric || a.Retraction() != (metric == MetricInfinite) {
					t.Fatalf("advert %v metric %d retraction %v", a.Forwarder, a.Metric, a.Retraction())
				}
				if !bytes.Equal(a.AnnounceRaw, v[name]) {
					t.Fatal("AnnounceRaw differs from the announce")
				}
				if &a.AnnounceRaw[0] != &b[AdvertHeaderSize] || cap(a.AnnounceRaw) != len(a.AnnounceRaw) {
					t.Fatal("AnnounceRaw does not alias the input with capped capacity")
				}
				if err := a.Announce.Verify(testNow, AnnouncePolicy{}); err != nil {
					t.Fatal(err)
				}
				if a.Announce.Address() != testIdentity(t, 1).Address() {
					t.Fatal("announce from the wrong origin")
				}
			})
		}
	}
}

// TestAdvertPassOn re-advertises a received advert as a forwarder would: a
// new forwarder and metric around the same announce bytes.
func TestAdvertPassOn(t *testing.T) {
	v := goldenVectors(t)
	origin := testIdentity(t, 1)
	in, err := ParseAdvert(AppendAdvert(nil, origin.Address(), 0, v["announce-compact"]))
	if err != nil {
		t.Fatal(err)
	}
	me := ctlAddr(9)
	raw := bytes.Clone(in.AnnounceRaw)
	if err := IncrementAnnounceHops(raw); err != nil {
		t.Fatal(err)
	}
	out, err := ParseAdvert(AppendAdvert(nil, me, in.Metric+1, raw))
	if err != nil {
		t.Fatal(err)
	}
	if out.Forwarder != me || out.Metric != 1 || out.Announce.HopCount != 1 {
		t.Fatalf("passed on: %v metric %d hops %d", out.Forwarder, out.Metric, out.Announce.HopCount)
	}
	// The hop count is not signed: the announce still verifies, but its
	// bytes differ from the ones first received.
	if err := out.Announce.Verify(testNow, AnnouncePolicy{}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(out.AnnounceRaw, in.AnnounceRaw) {
		t.Fatal("hop count change did not show in the bytes")
	}
}

func TestHopRoundTrip(t *testing.T) {
	v := goldenVectors(t)
	next := ctlAddr(8)
	for _, name := range []string{"envelope-sealed", "lite-frame", "channel", "advert", "custody-accept"} {
		t.Run(name, func(t *testing.T) {
			b := AppendHop([]byte("xyz"), next, v[name])
			if string(b[:3]) != "xyz" {
				t.Fatal("AppendHop lost the prefix")
			}
			b = b[3:]
			got, inner, err := ParseHop(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != next || !bytes.Equal(inner, v[name]) {
				t.Fatalf("next %v, inner %x", got, inner)
			}
			if &inner[0] != &b[HopHeaderSize] || cap(inner) != len(inner) {
				t.Fatal("inner frame does not alias the input with capped capacity")
			}
		})
	}
	// Errors return no values.
	next2, inner, err := ParseHop(AppendHop(nil, next, v["hop"]))
	if err == nil || !next2.IsZero() || inner != nil {
		t.Fatalf("nested hop: %v %x %v", next2, inner, err)
	}
}

func TestPathRequestRoundTrip(t *testing.T) {
	for _, p := range []PathRequest{
		{ID: [8]byte{1}, Target: ctlAddr(1), HopLimit: 1},
		{ID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Target: ctlAddr(2), HopLimit: 15, HopCount: 15, WantKEMKey: true},
		{ID: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, Target: ctlAddr(3), HopLimit: 8, HopCount: 3},
		{ID: [8]byte{4}, Target: ctlAddr(4), HopLimit: 8, HasSeqno: true, Seqno: 0xfffffffe},
		{ID: [8]byte{5}, Target: ctlAddr(5), HopLimit: 8, WantKEMKey: true, HasSeqno: true, Seqno: 7},
		{ID: [8]byte{6}, Target: ctlAddr(6), HopLimit: 8, HopCount: 2, Forwarder: ctlAddr(7)},
		{ID: [8]byte{7}, Target: ctlAddr(6), HopLimit: 8, HasSeqno: true, Seqno: 9, Forwarder: ctlAddr(7)},
	} {
		b := p.AppendTo([]byte("xyz"))
		size := PathRequestSize
		if p.HasSeqno {
			size = PathRequestSeqnoSize
		}
		if !p.Forwarder.IsZero() {
			size += AddressSize
		}
		if string(b[:3]) != "xyz" || len(b) != 3+size {
			t.Fatalf("AppendTo = %x", b)
		}
		got, err := ParsePathRequest(b[3:])
		if err != nil || got != p {
			t.Fatalf("ParsePathRequest = %+v, %v; want %+v", got, err, p)
		}
		wantFlags := byte(0)
		if p.WantKEMKey {
			wantFlags = PathWantKEMKey
		}
		if p.HasSeqno {
			wantFlags |= PathSeqno
			if binary.BigEndian.Uint32(b[3+PathRequestSize:]) != p.Seqno {
				t.Fatalf("seqno %x", b[3+PathRequestSize:])
			}
		}
		if !p.Forwarder.IsZero() {
			wantFlags |= PathForwarder
			if !bytes.Equal(b[len(b)-AddressSize:], p.Forwarder[:]) {
				t.Fatalf("forwarder %x", b[len(b)-AddressSize:])
			}
		}
		if b[3+pathRequestHopsOffset] != p.HopLimit<<4|p.HopCount || b[3+PathRequestSize-1] != wantFlags {
			t.Fatalf("hops 0x%02x flags 0x%02x", b[3+pathRequestHopsOffset], b[3+PathRequestSize-1])
		}
	}
}

func TestIncrementPathRequestHops(t *testing.T) {
	for limit := uint8(1); limit <= MaxPathRequestHops; limit++ {
		p := PathRequest{ID: [8]byte{limit}, Target: ctlAddr(limit), HopLimit: limit, WantKEMKey: limit%2 == 0}
		raw := p.AppendTo(nil)
		for count := uint8(1); count <= limit; count++ {
			if err := IncrementPathRequestHops(raw); err != nil {
				t.Fatalf("limit %d: increment to %d: %v", limit, count, err)
			}
			got, err := ParsePathRequest(raw)
			want := p
			want.HopCount = count
			if err != nil || got != want {
				t.Fatalf("limit %d: after increment to %d: %+v, %v", limit, count, got, err)
			}
		}
		at := bytes.Clone(raw)
		if err := IncrementPathRequestHops(raw); !errors.Is(err, ErrHopLimit) {
			t.Fatalf("limit %d: increment at the limit: %v, want ErrHopLimit", limit, err)
		}
		if !bytes.Equal(raw, at) {
			t.Fatalf("limit %d: a refused increment changed the frame", limit)
		}
	}
	for _, tt := range pathRequestCases(t) {
		if tt.want == nil {
			continue
		}
		raw := bytes.Clone(tt.frame)
		if err := IncrementPathRequestHops(raw); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if !bytes.Equal(raw, tt.frame) {
			t.Errorf("%s: a refused increment changed the frame", tt.name)
		}
	}
}

func TestHopAckRoundTrip(t *testing.T) {
	id := ctlMessageID(6)
	b := AppendHopAck([]byte("xyz"), id)
	if string(b[:3]) != "xyz" || len(b) != 3+HopAckSize {
		t.Fatalf("AppendHopAck = %x", b)
	}
	if got, err := ParseHopAck(b[3:]); err != nil || got != id {
		t.Fatalf("ParseHopAck = %v, %v", got, err)
	}
	if got, err := ParseHopAck(b[4:]); err == nil || got != (MessageID{}) {
		t.Fatalf("bad frame returned %v, %v", got, err)
	}
}

func TestCustodyOfferRoundTrip(t *testing.T) {
	v := goldenVectors(t)
	bob := testIdentity(t, 2)
	for _, name := range []string{"envelope-sealed", "envelope-sealed-sender", "envelope-clear"} {
		t.Run(name, func(t *testing.T) {
			b := AppendCustodyOffer([]byte("xyz"), v[name])
			if string(b[:3]) != "xyz" {
				t.Fatal("AppendCustodyOffer lost the prefix")
			}
			e, err := ParseCustodyOffer(b[3:])
			if err != nil {
				t.Fatal(err)
			}
			want, err := ParseEnvelope(v[name])
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != want.ID || e.Dest != bob.Address() || !bytes.Equal(e.Payload, want.Payload) {
				t.Fatalf("offered envelope %v differs", e.ID)
			}
			if err := e.Verify(testNow, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
	if e, err := ParseCustodyOffer([]byte{byte(KindCustodyOffer), byte(KindEnvelope)}); err == nil || e != nil {
		t.Fatalf("bad offer returned %v, %v", e, err)
	}
}

func TestCustodyAcceptRoundTrip(t *testing.T) {
	id := ctlMessageID(7)
	for _, st := range []CustodyStatus{CustodyAccepted, CustodyRefusedQuota, CustodyRefusedPolicy} {
		b := AppendCustodyAccept([]byte("xyz"), id, st)
		if string(b[:3]) != "xyz" || len(b) != 3+CustodyAcceptSize || b[len(b)-1] != byte(st) {
			t.Fatalf("AppendCustodyAccept = %x", b)
		}
		gotID, gotSt, err := ParseCustodyAccept(b[3:])
		if err != nil || gotID != id || gotSt != st {
			t.Fatalf("ParseCustodyAccept = %v %v, %v", gotID, gotSt, err)
		}
	}
	gotID, gotSt, err := ParseCustodyAccept(AppendCustodyAccept(nil, id, 9))
	if err == nil || gotID != (MessageID{}) || gotSt != 0 {
		t.Fatalf("unknown status: %v %v, %v", gotID, gotSt, err)
	}
}

func TestCustodyStatusString(t *testing.T) {
	for st, want := range map[CustodyStatus]string{
		CustodyAccepted:      "accepted",
		CustodyRefusedQuota:  "refused-quota",
		CustodyRefusedPolicy: "refused-policy",
		3:                    "custody-status(3)",
		255:                  "custody-status(255)",
	} {
		if got := st.String(); got != want {
			t.Errorf("CustodyStatus(%d).String() = %q, want %q", uint8(st), got, want)
		}
	}
	if byte(CustodyAccepted) != 0 || byte(CustodyRefusedQuota) != 1 || byte(CustodyRefusedPolicy) != 2 {
		t.Fatal("custody status values differ from the format")
	}
}

// Fuzz targets. Each is seeded from the golden vectors and its table, checks
// that decoding never panics and fails only with the package's sentinel
// errors, and that whatever decodes re-encodes to the same bytes.

func ctlSeed(f *testing.F, cases func(testing.TB) []ctlCase, golden ...string) {
	f.Helper()
	addGolden(f, golden...)
	for _, tt := range cases(f) {
		f.Add(tt.frame)
	}
}

// ctlErrClass fails t if err wraps none of the decoding sentinels.
func ctlErrClass(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrTruncated, ErrTrailing, ErrTooLarge, ErrUnknownKind, ErrMalformed} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("unexpected error class: %v", err)
}

func FuzzParseAdvert(f *testing.F) {
	ctlSeed(f, advertCases, "advert")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdvert(b)
		if err != nil {
			ctlErrClass(t, err)
			if a != nil {
				t.Fatal("non-nil advert with an error")
			}
			return
		}
		if a.Forwarder.IsZero() || a.Announce == nil {
			t.Fatalf("accepted invalid advert %+v", a)
		}
		if out := AppendAdvert(nil, a.Forwarder, a.Metric, a.AnnounceRaw); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
		ann, err := a.Announce.MarshalBinary()
		if err != nil || !bytes.Equal(ann, a.AnnounceRaw) {
			t.Fatalf("announce re-encoding differs: %v", err)
		}
		_ = a.Announce.Verify(testNow, AnnouncePolicy{})
	})
}

func FuzzParseHop(f *testing.F) {
	ctlSeed(f, hopCases, "hop")
	f.Fuzz(func(t *testing.T, b []byte) {
		next, inner, err := ParseHop(b)
		if err != nil {
			ctlErrClass(t, err)
			if !next.IsZero() || inner != nil {
				t.Fatal("values returned with an error")
			}
			return
		}
		if next.IsZero() || len(inner) == 0 || !Kind(inner[0]).Known() || Kind(inner[0]) == KindHop || Kind(inner[0]) == KindFragment {
			t.Fatalf("accepted invalid hop frame %x", b)
		}
		if out := AppendHop(nil, next, inner); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzParsePathRequest(f *testing.F) {
	ctlSeed(f, pathRequestCases, "path-request", "path-request-seqno", "path-request-forwarder")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePathRequest(b)
		if err != nil {
			ctlErrClass(t, err)
			if p != (PathRequest{}) {
				t.Fatal("non-zero path request with an error")
			}
			c := bytes.Clone(b)
			if IncrementPathRequestHops(c) == nil || !bytes.Equal(c, b) {
				t.Fatal("increment accepted or changed an invalid frame")
			}
			return
		}
		if p.HopLimit < 1 || p.HopLimit > MaxPathRequestHops || p.HopCount > p.HopLimit || p.Target.IsZero() {
			t.Fatalf("accepted invalid path request %+v", p)
		}
		if out := p.AppendTo(nil); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
		c := bytes.Clone(b)
		err = IncrementPathRequestHops(c)
		if p.HopCount == p.HopLimit {
			if !errors.Is(err, ErrHopLimit) || !bytes.Equal(c, b) {
				t.Fatalf("increment at the limit: %v", err)
			}
			return
		}
		q, perr := ParsePathRequest(c)
		p.HopCount++
		if err != nil || perr != nil || q != p {
			t.Fatalf("increment: %v, %v, %+v", err, perr, q)
		}
	})
}

func FuzzParseHopAck(f *testing.F) {
	ctlSeed(f, hopAckCases, "hop-ack")
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseHopAck(b)
		if err != nil {
			ctlErrClass(t, err)
			return
		}
		if out := AppendHopAck(nil, id); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzParseCustodyOffer(f *testing.F) {
	ctlSeed(f, custodyOfferCases, "custody-offer")
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseCustodyOffer(b)
		if err != nil {
			ctlErrClass(t, err)
			if e != nil {
				t.Fatal("non-nil envelope with an error")
			}
			return
		}
		raw, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("offered envelope does not encode: %v", err)
		}
		if out := AppendCustodyOffer(nil, raw); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
		_ = e.Verify(testNow, 0)
	})
}

func FuzzParseCustodyAccept(f *testing.F) {
	ctlSeed(f, custodyAcceptCases, "custody-accept")
	f.Fuzz(func(t *testing.T, b []byte) {
		id, st, err := ParseCustodyAccept(b)
		if err != nil {
			ctlErrClass(t, err)
			return
		}
		if st > CustodyRefusedPolicy {
			t.Fatalf("accepted status %v", st)
		}
		if out := AppendCustodyAccept(nil, id, st); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

func TestExpiryNotice(t *testing.T) {
	id := MessageID{1, 2, 3}
	raw := AppendExpiryNotice(nil, id)
	if len(raw) != ExpiryNoticeSize {
		t.Fatalf("%d bytes", len(raw))
	}
	got, err := ParseExpiryNotice(raw)
	if err != nil || got != id {
		t.Fatalf("round trip: %v", err)
	}
	for n := range len(raw) {
		if _, err := ParseExpiryNotice(raw[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	if _, err := ParseExpiryNotice(append(raw, 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("trailing: %v", err)
	}
}

func FuzzParseExpiryNotice(f *testing.F) {
	f.Add(AppendExpiryNotice(nil, MessageID{9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseExpiryNotice(b)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendExpiryNotice(nil, id), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
