package p2p

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestRecordMailboxes: a record with flags or mailbox relays is version 3
// and carries them after the addresses, byte for byte as docs/protocol.md
// draws it; one without stays version 2; damaged or non-canonical
// extensions are refused.
func TestRecordMailboxes(t *testing.T) {
	id, m1, m2 := testIdentity(t, 1), testIdentity(t, 2).Address(), testIdentity(t, 3).Address()
	self := id.Address()
	hk := testHostKey(t, id).Public().(ed25519.PublicKey)
	addrs := testAddrs(t, "/ip4/127.0.0.1/tcp/4001")
	sign := func(flags byte, mb []protocol.Address) []byte {
		b, err := signRecordMailbox(id, hk, protocol.TimestampOf(testNow), protocol.TimestampOf(testNow.Add(time.Hour)), addrs, flags, mb)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v2 := sign(0, nil)
	if v2[0] != recordVersion {
		t.Fatalf("record without mailboxes has version %d, want 2", v2[0])
	}
	b := sign(RecordFlagMailbox, []protocol.Address{m1, m2})
	body := b[:len(b)-protocol.SignatureSize]
	tail := body[len(body)-2-2*protocol.AddressSize:]
	if b[0] != recordVersionMailbox || tail[0] != RecordFlagMailbox || tail[1] != 2 ||
		!bytes.Equal(tail[2:18], m1[:]) || !bytes.Equal(tail[18:], m2[:]) {
		t.Fatalf("version 3 layout: version %d, tail %x", b[0], tail)
	}
	r, err := validateRecord(RecordKey(id.Address()), b, testNow)
	if err != nil || r.Flags != RecordFlagMailbox || !slices.Equal(r.Mailboxes, []protocol.Address{m1, m2}) {
		t.Fatalf("decoded %+v, %v", r, err)
	}
	resign := func(body []byte) []byte { return append(bytes.Clone(body), id.Sign(recordSignLabel, body)...) }
	v2body := v2[:len(v2)-protocol.SignatureSize]
	asV3 := func(ext ...byte) []byte {
		x := append([]byte{recordVersionMailbox}, v2body[1:]...)
		return resign(append(x, ext...))
	}
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"version 3 without flags or mailboxes", asV3(0, 0), protocol.ErrMalformed},
		{"version 3 without the extension", asV3(), protocol.ErrTruncated},
		{"too many mailboxes", asV3(0, MaxRecordMailboxes+1), protocol.ErrTooLarge},
		{"mailbox count beyond data", asV3(append([]byte{0, 2}, m1[:]...)...), protocol.ErrTruncated},
		{"own address as mailbox", asV3(append([]byte{0, 1}, self[:]...)...), protocol.ErrMalformed},
		{"repeated mailbox", asV3(append(append([]byte{0, 2}, m1[:]...), m1[:]...)...), protocol.ErrMalformed},
		{"zero mailbox", asV3(append([]byte{0, 1}, make([]byte, 16)...)...), protocol.ErrMalformed},
		{"trailing bytes", asV3(append(append([]byte{0, 1}, m1[:]...), 9)...), protocol.ErrTrailing},
		{"mailboxes on a version 2 record", resign(append(bytes.Clone(v2body), append([]byte{1, 1}, m1[:]...)...)), protocol.ErrTrailing},
	} {
		if _, err := decodeRecord(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	m3, m4, m5 := testIdentity(t, 4).Address(), testIdentity(t, 5).Address(), testIdentity(t, 6).Address()
	if many := sign(0, []protocol.Address{m1, m2, m3, m4, m5}); len(many) != len(sign(0, []protocol.Address{m1, m2, m3, m4})) {
		t.Error("more than MaxRecordMailboxes were encoded")
	}
}

// TestRecordOwnMailboxLeftOut: a node configured with its own address (a
// relay list shared by every node, relays included) or the zero address
// among its mailbox relays still publishes a record every DHT node
// accepts: before, it signed a record the validator refuses, and the node
// could not be found at all.
func TestRecordOwnMailboxLeftOut(t *testing.T) {
	id, m1 := testIdentity(t, 1), testIdentity(t, 2).Address()
	hk := testHostKey(t, id).Public().(ed25519.PublicKey)
	addrs := testAddrs(t, "/ip4/127.0.0.1/tcp/4001")
	for _, c := range []struct {
		name      string
		flags     byte
		mailboxes []protocol.Address
		want      []protocol.Address
		version   byte
	}{
		{"own and another", 0, []protocol.Address{id.Address(), m1}, []protocol.Address{m1}, recordVersionMailbox},
		{"zero and another", 0, []protocol.Address{{}, m1}, []protocol.Address{m1}, recordVersionMailbox},
		{"only own", 0, []protocol.Address{id.Address()}, nil, recordVersion},
		{"only own, relay flag", RecordFlagMailbox, []protocol.Address{id.Address()}, nil, recordVersionMailbox},
		{"twice the same", 0, []protocol.Address{m1, m1}, []protocol.Address{m1}, recordVersionMailbox},
	} {
		b, err := signRecordMailbox(id, hk, protocol.TimestampOf(testNow), protocol.TimestampOf(testNow.Add(time.Hour)), addrs, c.flags, c.mailboxes)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, err := validateRecord(RecordKey(id.Address()), b, testNow)
		if err != nil {
			t.Errorf("%s: published record refused: %v", c.name, err)
			continue
		}
		if b[0] != c.version || !slices.Equal(r.Mailboxes, c.want) {
			t.Errorf("%s: version %d mailboxes %v, want version %d %v", c.name, b[0], r.Mailboxes, c.version, c.want)
		}
	}
}
