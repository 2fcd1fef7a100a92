package protocol

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

const labelAnnounce = "meshd/announce/v1"

// Capabilities are the services a node offers, announced so others can pick
// relays, mailboxes and bridges. Unknown bits are kept and signed as they
// are, so that nodes running an older version still relay announces from
// newer ones.
type Capabilities uint16

// Capability bits.
const (
	CapRelay     Capabilities = 1 << 0 // forwards traffic for others (relay mode)
	CapMailbox   Capabilities = 1 << 1 // keeps messages for offline recipients
	CapFAPPRelay Capabilities = 1 << 2 // indexes FAPP announces and answers queries
	CapBridge    Capabilities = 1 << 3 // bridges between IP and constrained links
	CapDHTServer Capabilities = 1 << 4 // serves the DHT
	CapLoRa      Capabilities = 1 << 5 // has a LoRa radio
	// CapSessions3: answers route session inits in modes 3 and 4 (key
	// schedule 3; docs/protocol.md section 10). A peer that announces it
	// is not an older version, so its lapsed handshakes are not a reason
	// to fall back to envelopes (docs/routing.md section 12).
	CapSessions3 Capabilities = 1 << 6
)

var capNames = []struct {
	c    Capabilities
	name string
}{
	{CapRelay, "relay"}, {CapMailbox, "mailbox"}, {CapFAPPRelay, "fapp-relay"},
	{CapBridge, "bridge"}, {CapDHTServer, "dht-server"}, {CapLoRa, "lora"},
	{CapSessions3, "sessions3"},
}

func (c Capabilities) String() string {
	var parts []string
	for _, n := range capNames {
		if c&n.c != 0 {
			parts = append(parts, n.name)
			c &^= n.c
		}
	}
	if c != 0 {
		parts = append(parts, fmt.Sprintf("0x%04x", uint16(c)))
	}
	return strings.Join(parts, ",")
}

// Announce flags (which optional parts are present). Unknown bits are an
// error, since they would change how the rest is read.
const (
	announceHasKEMKey = 1 << 0
	announceHasHints  = 1 << 1
	announceKnown     = announceHasKEMKey | announceHasHints
)

// Announce limits.
const (
	// MaxPeerIDSize bounds the libp2p peer ID hint (binary form).
	MaxPeerIDSize = 64
	// MaxAddrHints bounds the number of multiaddr hints.
	MaxAddrHints = 8
	// MaxAddrHintSize bounds one binary multiaddr hint.
	MaxAddrHintSize = 128
	// AnnounceCompactSize is an announce without the KEM key and hints,
	// small enough for one LoRa frame.
	AnnounceCompactSize = 1 + 1 + 1 + 2 + 4 + 4 + CompactIdentitySize + SignatureSize
	// MaxAnnounceSize bounds an encoded announce.
	MaxAnnounceSize = AnnounceCompactSize + KEMPublicKeySize + 1 + MaxPeerIDSize + 1 + MaxAddrHints*(1+MaxAddrHintSize)
)

// Hints tell IP nodes how to reach the announcer directly. They are opaque
// here (binary libp2p peer ID and multiaddrs); the transports interpret them.
type Hints struct {
	PeerID []byte
	Addrs  [][]byte
}

// Announce is a node's signed statement of who it is and what it offers.
// Announces travel with a hop count, which is the only field a forwarder
// changes and is not signed.
//
//	off  size  field
//	0    1     kind 0x11
//	1    1     hop count                       <- not signed
//	2    1     flags: bit 0 KEM key present, bit 1 hints present
//	3    2     capabilities
//	5    4     sequence number (strictly increasing per node)
//	9    4     timestamp (Unix seconds)
//	13   32    Ed25519 public key
//	45   32    SHA-256 of the KEM public key
//	77   1216  X-Wing public key               (if flag bit 0)
//	..   1+n   peer ID length, peer ID         (if flag bit 1)
//	..   1     number of address hints (0..8)  (if flag bit 1)
//	..   1+m   length, binary multiaddr, each  (if flag bit 1)
//	..   64    Ed25519 signature over all but the hop count, the KEM key
//	           and its flag bit
//
// Without the KEM key and hints an announce is 141 bytes and fits a single
// LoRa frame; the full KEM key (needed only to seal to the node) travels on
// IP links or on request.
type Announce struct {
	HopCount     uint8
	Capabilities Capabilities
	Sequence     uint32
	Timestamp    Timestamp
	Identity     CompactIdentity
	// KEMKey is the encoded X-Wing public key, or nil.
	KEMKey    []byte
	Hints     *Hints
	Signature [SignatureSize]byte
}

// Address returns the announcing node's address.
func (a *Announce) Address() Address { return a.Identity.Address() }

// AnnounceOptions choose what a new announce carries.
type AnnounceOptions struct {
	Capabilities Capabilities
	Sequence     uint32
	Timestamp    Timestamp
	// IncludeKEMKey adds the 1,216-byte KEM key.
	IncludeKEMKey bool
	Hints         *Hints
}

// NewAnnounce signs an announce for me.
func NewAnnounce(me *Identity, opts AnnounceOptions) (*Announce, error) {
	a := &Announce{
		Capabilities: opts.Capabilities,
		Sequence:     opts.Sequence,
		Timestamp:    opts.Timestamp,
		Identity:     me.Compact(),
		Hints:        opts.Hints,
	}
	if opts.IncludeKEMKey {
		a.KEMKey = me.Public().KEMPublicKey()
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	copy(a.Signature[:], me.signLabelled(labelAnnounce, a.signedBytes()))
	return a, nil
}

func (a *Announce) flags() byte {
	var f byte
	if a.KEMKey != nil {
		f |= announceHasKEMKey
	}
	if a.Hints != nil {
		f |= announceHasHints
	}
	return f
}

func (a *Announce) validate() error {
	if a.KEMKey != nil && len(a.KEMKey) != KEMPublicKeySize {
		return fmt.Errorf("announce: KEM key of %d bytes: %w", len(a.KEMKey), ErrMalformed)
	}
	if h := a.Hints; h != nil {
		if len(h.PeerID) > MaxPeerIDSize {
			return fmt.Errorf("announce: peer ID hint of %d bytes: %w", len(h.PeerID), ErrTooLarge)
		}
		if len(h.Addrs) > MaxAddrHints {
			return fmt.Errorf("announce: %d address hints: %w", len(h.Addrs), ErrTooLarge)
		}
		for _, ad := range h.Addrs {
			if len(ad) == 0 || len(ad) > MaxAddrHintSize {
				return fmt.Errorf("announce: address hint of %d bytes: %w", len(ad), ErrMalformed)
			}
		}
	}
	return nil
}

// appendBody appends everything from the flags byte to the end of the
// optional parts. Without withKEMKey it leaves out the KEM key and its flag
// bit: that is the form the signature covers.
func (a *Announce) appendBody(b []byte, withKEMKey bool) []byte {
	flags := a.flags()
	if !withKEMKey {
		flags &^= announceHasKEMKey
	}
	b = append(b, flags)
	b = appendU16(b, uint16(a.Capabilities))
	b = appendU32(b, a.Sequence)
	b = appendTimestamp(b, a.Timestamp)
	b = a.Identity.appendTo(b)
	if withKEMKey {
		b = append(b, a.KEMKey...)
	}
	if h := a.Hints; h != nil {
		b = append(b, byte(len(h.PeerID)))
		b = append(b, h.PeerID...)
		b = append(b, byte(len(h.Addrs)))
		for _, ad := range h.Addrs {
			b = append(b, byte(len(ad)))
			b = append(b, ad...)
		}
	}
	return b
}

// signedBytes is what the signature covers: everything but the hop count
// and the KEM key. The KEM key is bound by its hash in the identity, so a
// forwarder may strip it (towards a LoRa link) or attach it (towards an IP
// link) without breaking the signature.
func (a *Announce) signedBytes() []byte {
	return a.appendBody([]byte{byte(KindAnnounce)}, false)
}

// WithKEMKey returns a copy of the announce carrying key (or none, if key is
// nil). The signature stays valid if key hashes to the announced KEM key
// hash; Verify checks that.
func (a *Announce) WithKEMKey(key []byte) *Announce {
	c := *a
	c.KEMKey = bytes.Clone(key)
	return &c
}

// Size returns the encoded size.
func (a *Announce) Size() int {
	n := AnnounceCompactSize + len(a.KEMKey)
	if h := a.Hints; h != nil {
		n += 2 + len(h.PeerID)
		for _, ad := range h.Addrs {
			n += 1 + len(ad)
		}
	}
	return n
}

// AppendBinary appends the encoded announce to b.
func (a *Announce) AppendBinary(b []byte) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	b = append(b, byte(KindAnnounce), a.HopCount)
	b = a.appendBody(b, true)
	return append(b, a.Signature[:]...), nil
}

// MarshalBinary encodes the announce.
func (a *Announce) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, a.Size()))
}

// ParseAnnounce decodes an announce strictly. It does not verify it.
func ParseAnnounce(b []byte) (*Announce, error) {
	if len(b) > MaxAnnounceSize {
		return nil, fmt.Errorf("announce: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := newReader("announce", b)
	if k := Kind(r.u8("kind")); r.err == nil && k != KindAnnounce {
		return nil, fmt.Errorf("announce: %v: %w", k, ErrUnknownKind)
	}
	a := &Announce{}
	a.HopCount = r.u8("hop count")
	flags := r.u8("flags")
	if r.err == nil && flags&^announceKnown != 0 {
		return nil, fmt.Errorf("announce: unknown flags 0x%02x: %w", flags, ErrMalformed)
	}
	a.Capabilities = Capabilities(r.u16("capabilities"))
	a.Sequence = r.u32("sequence")
	a.Timestamp = Timestamp(r.u32("timestamp"))
	a.Identity = r.compactIdentity("identity")
	if flags&announceHasKEMKey != 0 {
		a.KEMKey = bytes.Clone(r.bytes(KEMPublicKeySize, "KEM key"))
	}
	if flags&announceHasHints != 0 {
		h := &Hints{}
		n := int(r.u8("peer ID length"))
		if r.err == nil && n > MaxPeerIDSize {
			return nil, fmt.Errorf("announce: peer ID hint of %d bytes: %w", n, ErrTooLarge)
		}
		h.PeerID = bytes.Clone(r.bytes(n, "peer ID"))
		count := int(r.u8("address count"))
		if r.err == nil && count > MaxAddrHints {
			return nil, fmt.Errorf("announce: %d address hints: %w", count, ErrTooLarge)
		}
		for i := 0; i < count && r.err == nil; i++ {
			m := int(r.u8("address length"))
			if r.err == nil && (m == 0 || m > MaxAddrHintSize) {
				return nil, fmt.Errorf("announce: address hint %d of %d bytes: %w", i, m, ErrMalformed)
			}
			h.Addrs = append(h.Addrs, bytes.Clone(r.bytes(m, "address")))
		}
		a.Hints = h
	}
	r.copyInto(a.Signature[:], "signature")
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

// AnnouncePolicy bounds the age of announces a node accepts.
type AnnouncePolicy struct {
	// MaxAge is how old an announce's timestamp may be (default 24 h).
	MaxAge time.Duration
	// MaxSkew is how far ahead of the local clock it may be (default 10 min).
	MaxSkew time.Duration
}

// Default announce acceptance bounds.
const (
	DefaultAnnounceMaxAge  = 24 * time.Hour
	DefaultAnnounceMaxSkew = 10 * time.Minute
)

// Verify checks an announce: the signature by the announced key, that the
// KEM key (if present) hashes to the announced hash (and so to the address),
// and freshness against now. Replays of older sequence numbers are the
// routing table's job: it keeps the highest sequence seen per address.
func (a *Announce) Verify(now time.Time, p AnnouncePolicy) error {
	if p.MaxAge == 0 {
		p.MaxAge = DefaultAnnounceMaxAge
	}
	if p.MaxSkew == 0 {
		p.MaxSkew = DefaultAnnounceMaxSkew
	}
	if err := a.validate(); err != nil {
		return err
	}
	if a.KEMKey != nil && kemKeyHash(a.KEMKey) != a.Identity.KEMKeyHash {
		return fmt.Errorf("announce from %v: KEM key: %w", a.Address(), ErrAddressMismatch)
	}
	if !a.Identity.verify(labelAnnounce, a.signedBytes(), a.Signature[:]) {
		return fmt.Errorf("announce from %v: %w", a.Address(), ErrBadSignature)
	}
	t := a.Timestamp.Time()
	if t.Before(now.Add(-p.MaxAge)) {
		return fmt.Errorf("announce from %v: timestamp %v older than %v: %w", a.Address(), t, p.MaxAge, ErrExpired)
	}
	if t.After(now.Add(p.MaxSkew)) {
		return fmt.Errorf("announce from %v: timestamp %v: %w", a.Address(), t, ErrFromFuture)
	}
	return nil
}

// PublicIdentity returns the full public identity if the announce carries
// the KEM key. Call it on verified announces only.
func (a *Announce) PublicIdentity() (*PublicIdentity, error) {
	if a.KEMKey == nil {
		return nil, fmt.Errorf("announce from %v: no KEM key: %w", a.Address(), ErrMalformed)
	}
	p, err := newPublicIdentity(a.Identity.SigningKey[:], a.KEMKey)
	if err != nil {
		return nil, err
	}
	if p.Compact() != a.Identity {
		return nil, fmt.Errorf("announce from %v: %w", a.Address(), ErrAddressMismatch)
	}
	return p, nil
}

// IncrementAnnounceHops adds one hop to an encoded announce in place.
func IncrementAnnounceHops(raw []byte) error {
	if len(raw) < AnnounceCompactSize || Kind(raw[0]) != KindAnnounce {
		return fmt.Errorf("increment announce hops: %w", ErrMalformed)
	}
	if raw[1] == 0xff {
		return fmt.Errorf("increment announce hops: %w", ErrHopLimit)
	}
	raw[1]++
	return nil
}

// SameSigned reports whether a and b carry the same signed content (they may
// differ in hop count and in whether the KEM key is attached). A node that
// verified a uses it to skip verifying b again.
func (a *Announce) SameSigned(b *Announce) bool {
	return a.Signature == b.Signature && bytes.Equal(a.signedBytes(), b.signedBytes())
}
