package p2p

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"meshd.dev/meshd/protocol"
)

// DHT address records.
const (
	// RecordNamespace is the DHT validator namespace of address records.
	// A key is "/meshd-addr/" followed by the raw 16-byte mesh address.
	RecordNamespace = "meshd-addr"
	// recordKeyPrefix is RecordNamespace as it starts a key.
	recordKeyPrefix = "/" + RecordNamespace + "/"
	// recordVersion is the first byte of an encoded record. Version 2
	// names the host key; version 1 records (whose peer was the identity's
	// own key) are refused.
	recordVersion = 2
	// recordVersionMailbox is the version of a record that also carries
	// flags and the node's mailbox relays. A node publishes it only when
	// it has either, so a node without them stays readable by DHT servers
	// that know only version 2.
	recordVersionMailbox = 3
	// recordSignLabel is the Identity.Sign label of a record's signature.
	recordSignLabel = "dht-addr/v2"

	// MaxRecordAddrs bounds the multiaddrs in one record.
	MaxRecordAddrs = 16
	// MaxRecordAddrLen bounds one encoded multiaddr in a record.
	MaxRecordAddrLen = 256
	// MaxRecordMailboxes bounds the mailbox relays one record names.
	MaxRecordMailboxes = 4
	// MaxRecordSize bounds an encoded record (a full version 3 record
	// with MaxRecordAddrs of MaxRecordAddrLen bytes and MaxRecordMailboxes
	// fits).
	MaxRecordSize = 1 + protocol.PublicIdentitySize + ed25519.PublicKeySize + 4 + 4 + 1 +
		MaxRecordAddrs*(2+MaxRecordAddrLen) + 2 + MaxRecordMailboxes*protocol.AddressSize + protocol.SignatureSize
	// MaxRecordLifetime bounds expires-issued of a record the validator
	// accepts, so a leaked or careless record cannot live for years.
	MaxRecordLifetime = 48 * time.Hour
	// MaxRecordClockSkew is how far in the future a record's issue time may
	// be, against the validating node's clock.
	MaxRecordClockSkew = time.Hour
	// RecordLifetime is the lifetime of the records this package publishes.
	// A node that goes away stops being found after at most this long.
	RecordLifetime = 4 * time.Hour
	// RepublishInterval is how often a host republishes its record (and it
	// also republishes when its listen addresses change).
	RepublishInterval = 30 * time.Minute
)

// Record errors. Decoding errors also wrap the protocol package's sentinels
// (protocol.ErrTruncated, ErrTooLarge, ErrBadSignature, ErrExpired, ...).
var (
	// ErrBadRecordKey reports a DHT key that is not "/meshd-addr/" and a
	// 16-byte address, or that names another address than the record.
	ErrBadRecordKey = errors.New("p2p: bad address record key")
	// ErrNoRecord reports that the DHT holds no valid record for an address.
	ErrNoRecord = errors.New("p2p: no address record found")
)

// Record is a decoded, validated DHT address record: which libp2p peer and
// multiaddrs serve a mesh address, signed by that address's identity.
//
// Layout (all integers big endian):
//
//	0      1                    1250       1282      1286      1290  1291
//	+------+--------------------+----------+---------+---------+-----+---------------------+-----------+
//	| 0x02 | PublicIdentity     | host key | issued  | expires | n   | n x (len u16, addr) | signature |
//	|      | (1249 bytes)       | Ed25519  | u32 s   | u32 s   | u8  | len <= 256, n <= 16 | 64 bytes  |
//	+------+--------------------+----------+---------+---------+-----+---------------------+-----------+
//
// Version 3 (0x03) has the same fields and then, before the signature,
// flags (u8; RecordFlagMailbox: the node runs a mailbox; unknown bits are
// kept, signed and ignored) and m (u8, m <= 4) mesh addresses of 16 bytes:
// the mailbox relays where the node collects messages sent while it is
// offline. A record without either is written as version 2.
//
// The signature is Identity.Sign("dht-addr/v2", every byte before it), so
// the identity binds its address to the host key and through it to the
// peer ID (the hash of the host key), as the host certificate of the link
// hello does. Addrs carry no /p2p/ component.
type Record struct {
	Identity *protocol.PublicIdentity
	HostKey  ed25519.PublicKey // the libp2p host key; Peer is its hash
	Peer     peer.ID
	Issued   protocol.Timestamp // seconds, also the sequence number: newer wins
	Expires  protocol.Timestamp
	Addrs    []ma.Multiaddr
	// Flags and Mailboxes are carried by version 3 records only.
	Flags     byte
	Mailboxes []protocol.Address
}

// RecordFlagMailbox in a record's flags says that the node runs a mailbox
// (relay mode): others may name it as their mailbox relay.
const RecordFlagMailbox = 1 << 0

// Address returns the record's mesh address.
func (r *Record) Address() protocol.Address { return r.Identity.Address() }

// AddrInfo returns the peer and addresses in the form libp2p dials.
func (r *Record) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: r.Peer, Addrs: append([]ma.Multiaddr(nil), r.Addrs...)}
}

// RecordKey returns the DHT key of the record for a.
func RecordKey(a protocol.Address) string { return recordKeyPrefix + string(a[:]) }

// parseRecordKey extracts the address from a DHT key.
func parseRecordKey(key string) (protocol.Address, error) {
	var a protocol.Address
	rest, ok := strings.CutPrefix(key, recordKeyPrefix)
	if !ok || len(rest) != protocol.AddressSize {
		return a, fmt.Errorf("%w: want %q and %d bytes, got %d bytes", ErrBadRecordKey, recordKeyPrefix, protocol.AddressSize, len(key))
	}
	copy(a[:], rest)
	return a, nil
}

// signRecord encodes and signs a record for id and its host key.
func signRecord(id *protocol.Identity, hostKey ed25519.PublicKey, issued, expires protocol.Timestamp, addrs []ma.Multiaddr) ([]byte, error) {
	return signRecordMailbox(id, hostKey, issued, expires, addrs, 0, nil)
}

// signRecordMailbox is signRecord with flags and mailbox relays: a version
// 3 record when either is set, version 2 otherwise. Mailboxes beyond
// MaxRecordMailboxes are left out, and so are the node's own address, the
// zero address and repeats: the validator refuses a record naming the
// first two, and a node whose record is refused cannot be found at all.
func signRecordMailbox(id *protocol.Identity, hostKey ed25519.PublicKey, issued, expires protocol.Timestamp, addrs []ma.Multiaddr,
	flags byte, mailboxes []protocol.Address) ([]byte, error) {
	mailboxes = recordMailboxes(id.Address(), mailboxes)
	version := byte(recordVersion)
	if flags != 0 || len(mailboxes) > 0 {
		version = recordVersionMailbox
	}
	if len(hostKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrHostKey, len(hostKey))
	}
	if len(addrs) > MaxRecordAddrs {
		addrs = addrs[:MaxRecordAddrs]
	}
	b := make([]byte, 0, 1+protocol.PublicIdentitySize+ed25519.PublicKeySize+9+len(addrs)*64+protocol.SignatureSize)
	b = append(b, version)
	b, err := id.Public().AppendBinary(b)
	if err != nil {
		return nil, err
	}
	b = append(b, hostKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(issued))
	b = binary.BigEndian.AppendUint32(b, uint32(expires))
	var kept [][]byte
	for _, a := range addrs {
		ab := a.Bytes()
		if len(ab) == 0 || len(ab) > MaxRecordAddrLen {
			continue // cannot be carried; the others still can
		}
		kept = append(kept, ab)
	}
	b = append(b, byte(len(kept)))
	for _, ab := range kept {
		b = binary.BigEndian.AppendUint16(b, uint16(len(ab)))
		b = append(b, ab...)
	}
	if version == recordVersionMailbox {
		b = append(b, flags, byte(len(mailboxes)))
		for _, m := range mailboxes {
			b = append(b, m[:]...)
		}
	}
	return append(b, id.Sign(recordSignLabel, b)...), nil
}

// recordMailboxes returns the mailbox relays a record of self may name:
// neither self nor zero, each once, at most MaxRecordMailboxes.
func recordMailboxes(self protocol.Address, mailboxes []protocol.Address) []protocol.Address {
	var out []protocol.Address
	for _, m := range mailboxes {
		if len(out) < MaxRecordMailboxes && m != self && !m.IsZero() && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// decodeRecord parses a record and checks its signature. It does not check
// times or the key: see validateRecord.
func decodeRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("p2p: address record of %d bytes, limit %d: %w", len(b), MaxRecordSize, protocol.ErrTooLarge)
	}
	const fixed = 1 + protocol.PublicIdentitySize + ed25519.PublicKeySize + 4 + 4 + 1
	if len(b) < fixed+protocol.SignatureSize {
		return nil, fmt.Errorf("p2p: address record of %d bytes: %w", len(b), protocol.ErrTruncated)
	}
	if b[0] != recordVersion && b[0] != recordVersionMailbox {
		return nil, fmt.Errorf("p2p: address record version %d: %w", b[0], protocol.ErrUnknownKind)
	}
	id, err := protocol.ParsePublicIdentity(b[1 : 1+protocol.PublicIdentitySize])
	if err != nil {
		return nil, fmt.Errorf("p2p: address record: %w", err)
	}
	off := 1 + protocol.PublicIdentitySize
	hostKey := ed25519.PublicKey(bytes.Clone(b[off : off+ed25519.PublicKeySize]))
	off += ed25519.PublicKeySize
	r := &Record{
		Identity: id,
		HostKey:  hostKey,
		Issued:   protocol.Timestamp(binary.BigEndian.Uint32(b[off:])),
		Expires:  protocol.Timestamp(binary.BigEndian.Uint32(b[off+4:])),
	}
	n := int(b[off+8])
	off = fixed
	if n > MaxRecordAddrs {
		return nil, fmt.Errorf("p2p: address record with %d addrs, limit %d: %w", n, MaxRecordAddrs, protocol.ErrTooLarge)
	}
	body := b[:len(b)-protocol.SignatureSize]
	for i := range n {
		if len(body)-off < 2 {
			return nil, fmt.Errorf("p2p: address record addr %d length: %w", i, protocol.ErrTruncated)
		}
		l := int(binary.BigEndian.Uint16(body[off:]))
		off += 2
		if l == 0 || l > MaxRecordAddrLen {
			return nil, fmt.Errorf("p2p: address record addr %d of %d bytes (1..%d): %w", i, l, MaxRecordAddrLen, protocol.ErrMalformed)
		}
		if len(body)-off < l {
			return nil, fmt.Errorf("p2p: address record addr %d: %w", i, protocol.ErrTruncated)
		}
		a, err := ma.NewMultiaddrBytes(body[off : off+l])
		if err != nil {
			return nil, fmt.Errorf("p2p: address record addr %d: %v: %w", i, err, protocol.ErrMalformed)
		}
		if !bytes.Equal(a.Bytes(), body[off:off+l]) {
			// Only the canonical encoding round-trips; keep signed bytes unambiguous.
			return nil, fmt.Errorf("p2p: address record addr %d not canonical: %w", i, protocol.ErrMalformed)
		}
		r.Addrs = append(r.Addrs, a)
		off += l
	}
	if b[0] == recordVersionMailbox {
		if off, err = decodeMailboxes(r, body, off); err != nil {
			return nil, err
		}
	}
	if off != len(body) {
		return nil, fmt.Errorf("p2p: address record: %d bytes before the signature: %w", len(body)-off, protocol.ErrTrailing)
	}
	if !id.Compact().Verify(recordSignLabel, body, b[len(body):]) {
		return nil, fmt.Errorf("p2p: address record for %s: %w", id.Address(), protocol.ErrBadSignature)
	}
	if r.Peer, err = hostPeerID(hostKey); err != nil {
		return nil, fmt.Errorf("p2p: address record for %s: %w: %w", id.Address(), err, protocol.ErrMalformed)
	}
	return r, nil
}

// decodeMailboxes reads a version 3 record's flags and mailbox relays
// from body at off and returns the offset after them.
func decodeMailboxes(r *Record, body []byte, off int) (int, error) {
	if len(body)-off < 2 {
		return off, fmt.Errorf("p2p: address record flags and mailbox count: %w", protocol.ErrTruncated)
	}
	r.Flags = body[off]
	m := int(body[off+1])
	off += 2
	if m == 0 && r.Flags == 0 {
		// Written as version 2; one encoding per record keeps signed
		// bytes unambiguous.
		return off, fmt.Errorf("p2p: address record version 3 without flags or mailboxes: %w", protocol.ErrMalformed)
	}
	if m > MaxRecordMailboxes {
		return off, fmt.Errorf("p2p: address record with %d mailboxes, limit %d: %w", m, MaxRecordMailboxes, protocol.ErrTooLarge)
	}
	if len(body)-off < m*protocol.AddressSize {
		return off, fmt.Errorf("p2p: address record mailboxes: %w", protocol.ErrTruncated)
	}
	for range m {
		var a protocol.Address
		copy(a[:], body[off:])
		if a == r.Identity.Address() || a.IsZero() {
			return off, fmt.Errorf("p2p: address record names %s as its own mailbox: %w", a, protocol.ErrMalformed)
		}
		if slices.Contains(r.Mailboxes, a) {
			// signRecordMailbox writes each once: one encoding per record.
			return off, fmt.Errorf("p2p: address record names mailbox %s twice: %w", a, protocol.ErrMalformed)
		}
		r.Mailboxes = append(r.Mailboxes, a)
		off += protocol.AddressSize
	}
	return off, nil
}

// validateRecord decodes a record stored under key and checks everything a
// DHT node must check before storing or returning it.
func validateRecord(key string, value []byte, now time.Time) (*Record, error) {
	a, err := parseRecordKey(key)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(value)
	if err != nil {
		return nil, err
	}
	if r.Address() != a {
		return nil, fmt.Errorf("%w: key names %s, record is for %s", ErrBadRecordKey, a, r.Address())
	}
	if r.Expires <= r.Issued || r.Expires.Time().Sub(r.Issued.Time()) > MaxRecordLifetime {
		return nil, fmt.Errorf("p2p: address record lifetime %s..%s (limit %s): %w", r.Issued.Time(), r.Expires.Time(), MaxRecordLifetime, protocol.ErrMalformed)
	}
	if !now.Before(r.Expires.Time()) {
		return nil, fmt.Errorf("p2p: address record for %s expired at %s: %w", a, r.Expires.Time(), protocol.ErrExpired)
	}
	if r.Issued.Time().Sub(now) > MaxRecordClockSkew {
		return nil, fmt.Errorf("p2p: address record for %s issued at %s: %w", a, r.Issued.Time(), protocol.ErrFromFuture)
	}
	return r, nil
}

// recordValidator is the DHT validator of the "meshd-addr" namespace.
type recordValidator struct {
	now func() time.Time
	// refused, if set, hears of every record Validate refuses.
	refused func(key string, err error)
}

// Validate implements record.Validator.
func (v recordValidator) Validate(key string, value []byte) error {
	_, err := validateRecord(key, value, v.now())
	if err != nil && v.refused != nil {
		v.refused(key, err)
	}
	return err
}

// Select implements record.Validator: the valid record with the newest issue
// time wins; on a tie, the later expiry, then the first.
func (v recordValidator) Select(key string, values [][]byte) (int, error) {
	best, bestRec := -1, (*Record)(nil)
	now := v.now()
	for i, val := range values {
		r, err := validateRecord(key, val, now)
		if err != nil {
			continue
		}
		if bestRec == nil || r.Issued > bestRec.Issued || (r.Issued == bestRec.Issued && r.Expires > bestRec.Expires) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w among %d values", ErrNoRecord, len(values))
	}
	return best, nil
}
