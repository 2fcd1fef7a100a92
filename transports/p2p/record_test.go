package p2p

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/protocol"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testAddrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func mustSign(t testing.TB, id *protocol.Identity, issued, expires time.Time, addrs []ma.Multiaddr) []byte {
	t.Helper()
	b, err := signRecord(id, testHostKey(t, id).Public().(ed25519.PublicKey), protocol.TimestampOf(issued), protocol.TimestampOf(expires), addrs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	id := testIdentity(t, 1)
	addrs := testAddrs(t, "/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/4001/quic-v1")
	b := mustSign(t, id, testNow, testNow.Add(RecordLifetime), addrs)
	r, err := validateRecord(RecordKey(id.Address()), b, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Identity.Equal(id.Public()) || r.Address() != id.Address() || r.Peer != testPeerID(t, id) {
		t.Fatal("record identity or peer differs")
	}
	if r.Issued.Time() != testNow || r.Expires.Time() != testNow.Add(RecordLifetime) {
		t.Fatalf("times %s %s", r.Issued.Time(), r.Expires.Time())
	}
	if len(r.Addrs) != 2 || !r.Addrs[0].Equal(addrs[0]) || !r.Addrs[1].Equal(addrs[1]) {
		t.Fatalf("addrs %v", r.Addrs)
	}
	if ai := r.AddrInfo(); ai.ID != r.Peer || len(ai.Addrs) != 2 {
		t.Fatalf("AddrInfo %v", ai)
	}
	// At most MaxRecordAddrs are kept.
	var many []ma.Multiaddr
	for range MaxRecordAddrs + 5 {
		many = append(many, addrs[0])
	}
	r, err = decodeRecord(mustSign(t, id, testNow, testNow.Add(time.Hour), many))
	if err != nil || len(r.Addrs) != MaxRecordAddrs {
		t.Fatalf("many addrs: %v, %d kept", err, len(r.Addrs))
	}
}

func TestRecordValidatorRejects(t *testing.T) {
	id := testIdentity(t, 1)
	other := testIdentity(t, 2)
	addrs := testAddrs(t, "/ip4/127.0.0.1/tcp/4001")
	key := RecordKey(id.Address())
	good := mustSign(t, id, testNow, testNow.Add(time.Hour), addrs)

	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1
		return b
	}
	// A record with n address slots claimed, built by hand and signed.
	withCount := func(n byte, body []byte) []byte {
		b := []byte{recordVersion}
		b, _ = id.Public().AppendBinary(b)
		b = append(b, testHostKey(t, id).Public().(ed25519.PublicKey)...)
		b = binary.BigEndian.AppendUint32(b, uint32(protocol.TimestampOf(testNow)))
		b = binary.BigEndian.AppendUint32(b, uint32(protocol.TimestampOf(testNow.Add(time.Hour))))
		b = append(b, n)
		b = append(b, body...)
		return append(b, id.Sign(recordSignLabel, b)...)
	}
	addrBytes := addrs[0].Bytes()
	oneAddr := append(binary.BigEndian.AppendUint16(nil, uint16(len(addrBytes))), addrBytes...)

	cases := []struct {
		name  string
		key   string
		value []byte
		now   time.Time
		want  error
	}{
		{"wrong key", RecordKey(other.Address()), good, testNow, ErrBadRecordKey},
		{"key of another namespace", "/pk/" + string(id.Address().String()[:16]), good, testNow, ErrBadRecordKey},
		{"short key", recordKeyPrefix + "abc", good, testNow, ErrBadRecordKey},
		{"bad signature", key, flip(good, len(good)-1), testNow, protocol.ErrBadSignature},
		{"changed issue time", key, flip(good, 1+protocol.PublicIdentitySize+ed25519.PublicKeySize+3), testNow, protocol.ErrBadSignature},
		{"signed by another key", key, func() []byte {
			b := bytes.Clone(good[:len(good)-protocol.SignatureSize])
			return append(b, other.Sign(recordSignLabel, b)...)
		}(), testNow, protocol.ErrBadSignature},
		{"signed under another label", key, func() []byte {
			b := bytes.Clone(good[:len(good)-protocol.SignatureSize])
			return append(b, id.Sign("dht-addr/v1", b)...)
		}(), testNow, protocol.ErrBadSignature},
		{"expired", key, good, testNow.Add(time.Hour), protocol.ErrExpired},
		{"issued in the future", key, mustSign(t, id, testNow.Add(2*time.Hour), testNow.Add(3*time.Hour), addrs), testNow, protocol.ErrFromFuture},
		{"lifetime too long", key, mustSign(t, id, testNow, testNow.Add(MaxRecordLifetime+time.Second), addrs), testNow, protocol.ErrMalformed},
		{"expires before issue", key, mustSign(t, id, testNow, testNow.Add(-time.Second), addrs), testNow, protocol.ErrMalformed},
		{"too large", key, make([]byte, MaxRecordSize+1), testNow, protocol.ErrTooLarge},
		{"truncated", key, good[:100], testNow, protocol.ErrTruncated},
		{"empty", key, nil, testNow, protocol.ErrTruncated},
		{"version 1 (peer = identity key)", key, append([]byte{1}, good[1:]...), testNow, protocol.ErrUnknownKind},
		{"host key swapped", key, flip(good, 1+protocol.PublicIdentitySize+5), testNow, protocol.ErrBadSignature},
		{"too many addrs", key, withCount(MaxRecordAddrs+1, nil), testNow, protocol.ErrTooLarge},
		{"addr count beyond data", key, withCount(2, oneAddr), testNow, protocol.ErrTruncated},
		{"trailing bytes", key, withCount(1, append(bytes.Clone(oneAddr), 0)), testNow, protocol.ErrTrailing},
		{"zero-length addr", key, withCount(1, []byte{0, 0}), testNow, protocol.ErrMalformed},
		{"addr too long", key, withCount(1, binary.BigEndian.AppendUint16(nil, MaxRecordAddrLen+1)), testNow, protocol.ErrMalformed},
		{"addr not a multiaddr", key, withCount(1, []byte{0, 3, 0xff, 0xff, 0xff}), testNow, protocol.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := recordValidator{now: func() time.Time { return c.now }}
			err := v.Validate(c.key, c.value)
			if !errors.Is(err, c.want) {
				t.Fatalf("Validate = %v, want %v", err, c.want)
			}
		})
	}
	if err := (recordValidator{now: func() time.Time { return testNow }}).Validate(key, good); err != nil {
		t.Fatalf("good record rejected: %v", err)
	}
}

func TestRecordSelectNewest(t *testing.T) {
	id := testIdentity(t, 1)
	key := RecordKey(id.Address())
	addrs := testAddrs(t, "/ip4/127.0.0.1/tcp/4001")
	old := mustSign(t, id, testNow.Add(-time.Hour), testNow.Add(time.Hour), addrs)
	mid := mustSign(t, id, testNow.Add(-time.Minute), testNow.Add(time.Hour), addrs)
	midLonger := mustSign(t, id, testNow.Add(-time.Minute), testNow.Add(2*time.Hour), addrs)
	expired := mustSign(t, id, testNow.Add(-3*time.Hour), testNow.Add(-time.Hour), addrs)
	v := recordValidator{now: func() time.Time { return testNow }}
	for _, c := range []struct {
		vals [][]byte
		want int
	}{
		{[][]byte{old, mid}, 1},
		{[][]byte{mid, old}, 0},
		{[][]byte{old, mid, midLonger}, 2},
		{[][]byte{[]byte("junk"), old, expired}, 1},
	} {
		got, err := v.Select(key, c.vals)
		if err != nil || got != c.want {
			t.Errorf("Select = %d, %v; want %d", got, err, c.want)
		}
	}
	if _, err := v.Select(key, [][]byte{expired, []byte("junk")}); !errors.Is(err, ErrNoRecord) {
		t.Errorf("Select of invalid values: %v", err)
	}
}

func TestReadFrameLengths(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0}, ErrFrameSize},
		{"non-minimal length", []byte{0xac, 0x00, 'x'}, ErrFrameSize},
		{"over MaxFrameSize", binary.AppendUvarint(nil, MaxFrameSize+1), ErrFrameSize},
		{"four-byte prefix", []byte{0x80, 0x80, 0x80, 0x01}, ErrFrameSize},
		{"ends inside prefix", []byte{0x80}, io.ErrUnexpectedEOF},
		{"ends inside frame", []byte{3, 'a'}, io.ErrUnexpectedEOF},
		{"clean end", nil, io.EOF},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := readFrame(bufio.NewReader(bytes.NewReader(c.in)))
			if !errors.Is(err, c.want) {
				t.Fatalf("readFrame = %v, want %v", err, c.want)
			}
		})
	}
	largest := appendFrame(nil, make([]byte, MaxFrameSize))
	if f, err := readFrame(bufio.NewReader(bytes.NewReader(largest))); err != nil || len(f) != MaxFrameSize {
		t.Fatalf("largest frame: %d bytes, %v", len(f), err)
	}
}

func TestRankAddrs(t *testing.T) {
	in := testAddrs(t,
		"/ip4/127.0.0.1/tcp/1",
		"/ip4/192.168.1.5/tcp/1",
		"/ip4/8.8.4.4/tcp/1",
		"/ip6/::1/tcp/1",
		"/ip4/10.0.0.1/udp/1/quic-v1",
		"/ip6/2001:4860::1/tcp/1",
	)
	got := rankAddrs(in)
	want := []string{"/ip4/8.8.4.4/tcp/1", "/ip6/2001:4860::1/tcp/1", "/ip4/192.168.1.5/tcp/1",
		"/ip4/10.0.0.1/udp/1/quic-v1", "/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("rankAddrs = %v, want %v", got, want)
		}
	}
}
