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

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// FuzzReadFrames decodes a byte stream as link frames: no panic, no frame
// outside 1..MaxFrameSize, and the frames re-encode to the bytes consumed.
func FuzzReadFrames(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("hello")), []byte("world")))
	f.Add(binary.AppendUvarint(nil, MaxFrameSize+1))
	f.Add(binary.AppendUvarint(nil, 1<<63))
	f.Add([]byte{0})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add(appendFrame(nil, bytes.Repeat([]byte{1}, 300))[:200])
	f.Add([]byte("\xac\x000000000000000000000000000000000000000000000"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var out []byte
		for {
			fr, err := readFrame(r)
			if err != nil {
				if errors.Is(err, io.EOF) && len(out) != len(in) {
					t.Fatalf("clean EOF after %d of %d bytes", len(out), len(in))
				}
				break
			}
			if len(fr) == 0 || len(fr) > MaxFrameSize {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			out = appendFrame(out, fr)
		}
		if !bytes.Equal(out, in[:len(out)]) {
			t.Fatal("decoded frames do not re-encode to the bytes they came from")
		}
	})
}

// FuzzParseHello: no panic; an accepted hello carries a certificate, by
// its identity, for the expected peer, in force at now.
func FuzzParseHello(f *testing.F) {
	id := testIdentity(f, 1)
	remote := testPeerID(f, id)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good, _ := appendHello(nil, id.Public(), testCert(f, id, now, HostCertLifetime))
	f.Add(good)
	f.Add(good[:HelloSize-1])
	f.Add(append([]byte{1}, good[1:]...))
	other := testIdentity(f, 2)
	f.Add(testHello(f, other))
	crossed, _ := appendHello(nil, id.Public(), testCert(f, other, now, HostCertLifetime))
	f.Add(crossed)
	f.Add(append(good[:HelloSize-HostCertSize:HelloSize-HostCertSize], make([]byte, HostCertSize)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		pub, err := readHello(bytes.NewReader(in), remote, now)
		if err != nil {
			return
		}
		cert := in[1+protocol.PublicIdentitySize : HelloSize]
		c, err := parseHostCert(cert, pub.Compact(), now)
		if err != nil || c.peer != remote {
			t.Fatalf("accepted a hello whose certificate does not name %s: %v", remote, err)
		}
		b, _ := appendHello(nil, pub, cert)
		if !bytes.Equal(b, in[:HelloSize]) {
			t.Fatal("hello does not re-encode to its bytes")
		}
	})
}

// FuzzDecodeRecord: no panic on any record bytes; an accepted record
// re-encodes (with the same identity) to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	id := testIdentity(f, 1)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hk := testHostKey(f, id).Public().(ed25519.PublicKey)
	good, err := signRecord(id, hk, protocol.TimestampOf(now), protocol.TimestampOf(now.Add(time.Hour)),
		testAddrs(f, "/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/4001/quic-v1", "/dns4/example.com/tcp/443"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:1+protocol.PublicIdentitySize+ed25519.PublicKeySize+9])
	bad := bytes.Clone(good)
	bad[1+protocol.PublicIdentitySize+ed25519.PublicKeySize+8] = 200
	f.Add(bad)
	v3, err := signRecordMailbox(id, hk, protocol.TimestampOf(now), protocol.TimestampOf(now.Add(time.Hour)),
		testAddrs(f, "/ip4/127.0.0.1/tcp/4001"), RecordFlagMailbox, []protocol.Address{testIdentity(f, 2).Address(), testIdentity(f, 3).Address()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v3)
	f.Add(v3[:len(v3)-protocol.SignatureSize-1])
	key := RecordKey(id.Address())
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeRecord(in)
		_, verr := validateRecord(key, in, now)
		if err != nil {
			if verr == nil {
				t.Fatal("validate accepted what decode refused")
			}
			return
		}
		if len(r.Addrs) > MaxRecordAddrs {
			t.Fatalf("%d addrs", len(r.Addrs))
		}
		if r.Address() == id.Address() {
			again, err := signRecordMailbox(id, r.HostKey, r.Issued, r.Expires, r.Addrs, r.Flags, r.Mailboxes)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("accepted record does not re-encode: %v", err)
			}
		}
	})
}

// FuzzParseMDNSEntry: no panic on any instance name and TXT strings; the
// result is bounded and names only the instance's peer.
func FuzzParseMDNSEntry(f *testing.F) {
	id := testPeerID(f, testIdentity(f, 1))
	other := testPeerID(f, testIdentity(f, 2))
	f.Add(id.String(), "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/"+id.String(), "dnsaddr=/ip6/::1/udp/1/quic-v1")
	f.Add(id.String(), "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/"+other.String(), "x")
	f.Add("not-a-peer", "dnsaddr=/ip4/1.2.3.4/tcp/1", "")
	f.Add(id.String(), "dnsaddr=/ip4/999.0.0.1/tcp/1", "dnsaddr=")
	f.Fuzz(func(t *testing.T, instance, txt1, txt2 string) {
		txt := []string{txt1, txt2}
		for range 3 * mdnsMaxAddrs {
			txt = append(txt, txt1)
		}
		ai, err := parseMDNSEntry(instance, txt)
		if err != nil {
			return
		}
		if want, err := peer.Decode(instance); err != nil || ai.ID != want {
			t.Fatalf("peer %s from instance %q", ai.ID, instance)
		}
		if len(ai.Addrs) == 0 || len(ai.Addrs) > mdnsMaxAddrs {
			t.Fatalf("%d addrs", len(ai.Addrs))
		}
		for _, a := range ai.Addrs {
			if _, p := peer.SplitAddr(a); p != "" {
				t.Fatalf("addr %s keeps a /p2p/ part", a)
			}
		}
	})
}
