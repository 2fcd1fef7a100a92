package protocol

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20"
)

// Channel frame sizes and limits.
const (
	// ChannelKeySize is the size of a channel's shared secret key.
	ChannelKeySize = 32
	// ChannelIDSize is the size of a channel ID.
	ChannelIDSize = 4
	// ChannelMessageIDSize is the size of a channel message ID. Six random
	// bytes suffice: the send time is part of the dedup key and of the key
	// derivation, so two messages clash only if they also share a second.
	ChannelMessageIDSize = 6
	// ChannelTimeSize is the size of the send time (Unix seconds, uint32).
	ChannelTimeSize = 4
	// ChannelTagSize is the size of the truncated HMAC-SHA256 tag.
	ChannelTagSize = 8
	// ChannelOverhead is what a channel frame adds to an unsigned body:
	// kind, hops, channel ID, message ID, send time and tag.
	ChannelOverhead = channelHeaderSize + ChannelTagSize // 24
	// ChannelSignedOverhead is what a signed channel frame adds to its body:
	// ChannelOverhead plus the sender's compact identity and signature.
	ChannelSignedOverhead = ChannelOverhead + channelSenderSize // 150
	// MaxChannelFrameSize bounds an encoded channel frame.
	MaxChannelFrameSize = 64 * 1024
	// MaxChannelHops is the largest hop limit a channel frame can carry (the
	// hop limit is a 4-bit field).
	MaxChannelHops = 15

	channelHeaderSize = 1 + 1 + ChannelIDSize + ChannelMessageIDSize + ChannelTimeSize // 16
	channelSenderSize = CompactIdentitySize + SignatureSize                            // 128
)

// Domain-separation labels of channel frames.
const (
	labelChannelID   = "meshd/channel-id/v1"
	labelChannelKeys = "meshd/channel/v2"
	labelChannelSig  = "meshd/channel-sig/v2"
)

// Channel frames are encrypted with oneTimeXOR: every (channel key, kind,
// message ID) derives its own key, so no key encrypts twice unless a sender
// repeats a random 64-bit message ID.

// ChannelKey is the shared secret of a broadcast channel. Everyone who holds
// it can read the channel and, in unsigned frames, write to it as anyone:
// signed frames (kind 0x16) are what tell members apart.
type ChannelKey [ChannelKeySize]byte

// NewChannelKey draws a fresh channel key from rand. Use crypto/rand in
// production and a seeded reader in tests and simulations.
func NewChannelKey(rand io.Reader) (ChannelKey, error) {
	var k ChannelKey
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return ChannelKey{}, fmt.Errorf("new channel key: reading randomness: %w", err)
	}
	return k, nil
}

// ID returns the public 4-byte ID of the channel: the first 4 bytes of
// HMAC-SHA256(key, "meshd/channel-id/v1"). It lets a receiver skip frames of
// channels it does not hold and says nothing about the key. Being 32 bits,
// two channels may share an ID; their frames then fail to open with
// ErrDecrypt rather than ErrNotForUs.
func (k ChannelKey) ID() ChannelID {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(labelChannelID))
	var sum [sha256.Size]byte
	var id ChannelID
	copy(id[:], m.Sum(sum[:0]))
	return id
}

// ChannelID names a channel on the wire; see ChannelKey.ID.
type ChannelID [ChannelIDSize]byte

// String returns the 8-character lowercase hex form.
func (id ChannelID) String() string { return hex.EncodeToString(id[:]) }

// ChannelFrame is a channel broadcast frame (format v2), as flooded over
// LoRa and TCP mesh links and published on gossip topics:
//
//	0      1      2          6            12     16           16+n      24+n
//	+------+------+----------+------------+------+------------+---------+
//	| kind | hops | channel  | message ID | time | ciphertext | tag (8) |
//	+------+------+----------+------------+------+------------+---------+
//
//	hops:  bits 7-4 hop limit (1..15), bits 3-0 hop count (0..limit)
//	time:  send time, Unix seconds, big-endian uint32
//
// kind is 0x25 (KindChannel) or 0x26 (KindChannelSigned); 0x15 and 0x16
// were format v1 (no time, hop limit not authenticated) and are refused.
// The hop count (bits 3-0 of the hops byte) is the only field a forwarder
// changes (IncrementChannelHops) and the only one not authenticated: the
// tag covers the hop limit, so a forwarder that raises it makes the frame
// fail at the next member. The message ID is 6 random bytes; with the
// channel ID and the time it is the flooding dedup key (DedupKey).
// Receivers refuse frames older than their freshness bound or too far in
// the future (CheckFresh), so a recorded frame cannot be replayed once it
// has left the dedup caches.
//
// Each message has its own keys, derived with HKDF-SHA256 (RFC 5869):
//
//	secret = channel key, salt = channel ID,
//	info   = "meshd/channel/v2" || kind || message ID || time
//	output = ChaCha20 key (32) || MAC key (32)
//
// The plaintext is encrypted with ChaCha20 under an all-zero 12-byte nonce
// (the key is unique per message), then authenticated (encrypt-then-MAC):
//
//	tag = HMAC-SHA256(MAC key, kind || hop limit || channel ID || message ID || time || ciphertext)[:8]
//
// where the hop limit is one byte (0x01..0x0F). The plaintext of an unsigned
// frame (0x25) is the body. The plaintext of a signed frame (0x26) is
//
//	0                  64                     128          128+m
//	+------------------+----------------------+------------+
//	| sender compact   | Ed25519 signature    | body       |
//	| identity         |                      |            |
//	+------------------+----------------------+------------+
//
// where the signature is over "meshd/channel-sig/v2" || 0x00 || channel ID ||
// message ID || time || hop limit || body, so not even another member can
// re-date or widen someone's signed message. The sender is encrypted, so
// only channel members learn who sent a message.
type ChannelFrame struct {
	Kind       Kind // KindChannel or KindChannelSigned
	HopLimit   uint8
	HopCount   uint8
	Channel    ChannelID
	MessageID  [ChannelMessageIDSize]byte
	Time       uint32 // send time, Unix seconds
	Ciphertext []byte
	Tag        [ChannelTagSize]byte
}

// ChannelMessage is the authenticated content of a channel frame.
type ChannelMessage struct {
	Body []byte
	// Signed reports a signed frame; only then are Sender and From set.
	Signed bool
	Sender CompactIdentity
	From   Address
}

// channelMeta is what every message key, tag and signature is bound to.
type channelMeta struct {
	kind     Kind
	hopLimit uint8
	id       ChannelID
	msgID    [ChannelMessageIDSize]byte
	time     uint32
}

// SealChannel encrypts body for the channel of key and returns the encoded
// frame with a fresh random message ID from rand, send time now, hop limit
// hopLimit (1..15) and hop count 0. With a nil signer the frame is unsigned
// (KindChannel, ChannelOverhead bytes of overhead); otherwise signer signs it
// inside the encryption (KindChannelSigned, ChannelSignedOverhead bytes of
// overhead).
func SealChannel(rand io.Reader, key ChannelKey, hopLimit uint8, now time.Time, body []byte, signer *Identity) ([]byte, error) {
	if hopLimit < 1 || hopLimit > MaxChannelHops {
		return nil, fmt.Errorf("seal channel: hop limit %d not in 1..%d: %w", hopLimit, MaxChannelHops, ErrMalformed)
	}
	if now.Unix() < 0 || now.Unix() > 1<<32-1 {
		return nil, fmt.Errorf("seal channel: time %v not representable in uint32 seconds: %w", now, ErrMalformed)
	}
	meta := channelMeta{kind: KindChannel, hopLimit: hopLimit, id: key.ID(), time: uint32(now.Unix())}
	ptLen := len(body)
	if signer != nil {
		if signer.pub == nil || len(signer.sign) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("seal channel: signer is not an initialized identity: %w", ErrMalformed)
		}
		meta.kind, ptLen = KindChannelSigned, ptLen+channelSenderSize
	}
	if ptLen > MaxChannelFrameSize-ChannelOverhead {
		return nil, fmt.Errorf("seal channel: body of %d bytes: %w", len(body), ErrTooLarge)
	}
	if _, err := io.ReadFull(rand, meta.msgID[:]); err != nil {
		return nil, fmt.Errorf("seal channel: reading randomness: %w", err)
	}
	encKey, macKey, err := channelMessageKeys(key, meta)
	if err != nil {
		return nil, err
	}

	out := make([]byte, 0, ChannelOverhead+ptLen)
	out = meta.appendHeader(out)
	if signer != nil {
		out = signer.Compact().appendTo(out)
		out = append(out, signer.signLabelled(labelChannelSig, channelSigned(meta, body))...)
	}
	out = append(out, body...)
	ct := out[channelHeaderSize:]
	oneTimeXOR(encKey, ct, ct)
	tag := channelTag(macKey, meta, ct)
	return append(out, tag[:]...), nil
}

// appendHeader appends the header of a frame with hop count 0.
func (m channelMeta) appendHeader(b []byte) []byte {
	b = append(b, byte(m.kind), m.hopLimit<<4)
	b = append(b, m.id[:]...)
	b = append(b, m.msgID[:]...)
	return binary.BigEndian.AppendUint32(b, m.time)
}

// ParseChannelFrame decodes a channel frame strictly: known kind, hop limit
// 1..15 and hop count <= limit, at most MaxChannelFrameSize bytes, and for a
// signed frame room for the sender block. It does not authenticate (see
// Open) nor check the time (see CheckFresh). The frame's Ciphertext aliases
// b.
func ParseChannelFrame(b []byte) (*ChannelFrame, error) {
	if len(b) > MaxChannelFrameSize {
		return nil, fmt.Errorf("channel frame: %d bytes, limit %d: %w", len(b), MaxChannelFrameSize, ErrTooLarge)
	}
	r := newReader("channel frame", b)
	f := &ChannelFrame{Kind: Kind(r.u8("kind"))}
	if r.err == nil && !isChannelKind(f.Kind) {
		return nil, fmt.Errorf("channel frame: kind %v: %w", f.Kind, ErrUnknownKind)
	}
	hops := r.u8("hops")
	if r.err == nil {
		if err := checkChannelHops(hops); err != nil {
			return nil, fmt.Errorf("channel frame: %w", err)
		}
	}
	f.HopLimit, f.HopCount = hops>>4, hops&0x0f
	r.copyInto(f.Channel[:], "channel ID")
	r.copyInto(f.MessageID[:], "message ID")
	f.Time = r.u32("time")
	f.Ciphertext = r.bytes(max(r.remaining()-ChannelTagSize, 0), "ciphertext")
	r.copyInto(f.Tag[:], "tag")
	if err := r.done(); err != nil {
		return nil, err
	}
	if f.Kind == KindChannelSigned && len(f.Ciphertext) < channelSenderSize {
		return nil, fmt.Errorf("channel frame: signed frame with %d bytes of ciphertext, want at least %d: %w",
			len(f.Ciphertext), channelSenderSize, ErrTruncated)
	}
	return f, nil
}

// AppendTo appends the encoded frame to b. It encodes the fields as they
// are: the hop limit and count must fit in 4 bits each.
func (f *ChannelFrame) AppendTo(b []byte) []byte {
	b = append(b, byte(f.Kind), f.HopLimit<<4|f.HopCount&0x0f)
	b = append(b, f.Channel[:]...)
	b = append(b, f.MessageID[:]...)
	b = binary.BigEndian.AppendUint32(b, f.Time)
	b = append(b, f.Ciphertext...)
	return append(b, f.Tag[:]...)
}

// ChannelDedupKeySize is the size of a channel frame's dedup key.
const ChannelDedupKeySize = ChannelIDSize + ChannelMessageIDSize + ChannelTimeSize // 14

// DedupKey returns channel ID || message ID || time, the key under which
// flooding and gossip suppress duplicates. Forwarders that do not hold the
// channel key cannot authenticate it.
func (f *ChannelFrame) DedupKey() [ChannelDedupKeySize]byte {
	var k [ChannelDedupKeySize]byte
	copy(k[:], f.Channel[:])
	copy(k[ChannelIDSize:], f.MessageID[:])
	binary.BigEndian.PutUint32(k[ChannelIDSize+ChannelMessageIDSize:], f.Time)
	return k
}

// Sent returns the send time the frame claims (authenticated only by Open).
func (f *ChannelFrame) Sent() time.Time { return time.Unix(int64(f.Time), 0) }

// CheckFresh refuses a frame sent more than maxAge before now (ErrExpired)
// or more than skew after it (ErrFromFuture). Every node checks it, member
// or not, so a stale frame is neither delivered nor relayed; a forwarder
// that re-dates a frame makes it fail Open at members.
func (f *ChannelFrame) CheckFresh(now time.Time, maxAge, skew time.Duration) error {
	sent := f.Sent()
	switch {
	case now.Sub(sent) > maxAge:
		return fmt.Errorf("channel frame %v: sent %v, older than %v: %w", f.Channel, sent.UTC(), maxAge, ErrExpired)
	case sent.Sub(now) > skew:
		return fmt.Errorf("channel frame %v: sent %v, more than %v ahead: %w", f.Channel, sent.UTC(), skew, ErrFromFuture)
	}
	return nil
}

func (f *ChannelFrame) meta() channelMeta {
	return channelMeta{kind: f.Kind, hopLimit: f.HopLimit, id: f.Channel, msgID: f.MessageID, time: f.Time}
}

// Open authenticates and decrypts the frame with key. It fails with
// ErrNotForUs when the frame names another channel, with ErrDecrypt when
// the tag does not verify (wrong key, or a changed bit anywhere but the hop
// count), and with ErrBadSignature when a signed frame's inner signature
// does not verify. For a signed frame it returns the sender. It does not
// check the time: see CheckFresh.
func (f *ChannelFrame) Open(key ChannelKey) (*ChannelMessage, error) {
	if !isChannelKind(f.Kind) {
		return nil, fmt.Errorf("open channel frame: kind %v: %w", f.Kind, ErrUnknownKind)
	}
	if id := key.ID(); f.Channel != id {
		return nil, fmt.Errorf("open channel frame: channel %v, key is for %v: %w", f.Channel, id, ErrNotForUs)
	}
	meta := f.meta()
	encKey, macKey, err := channelMessageKeys(key, meta)
	if err != nil {
		return nil, err
	}
	tag := channelTag(macKey, meta, f.Ciphertext)
	if !hmac.Equal(tag[:], f.Tag[:]) {
		return nil, fmt.Errorf("open channel frame %v: %w", f.Channel, ErrDecrypt)
	}
	plain := make([]byte, len(f.Ciphertext))
	oneTimeXOR(encKey, plain, f.Ciphertext)
	if f.Kind == KindChannel {
		return &ChannelMessage{Body: plain}, nil
	}
	r := newReader("channel sender", plain)
	sender := r.compactIdentity("sender")
	sig := r.bytes(SignatureSize, "signature")
	body := r.rest()
	if r.err != nil {
		return nil, fmt.Errorf("open channel frame: %w", r.err)
	}
	if !sender.verify(labelChannelSig, channelSigned(meta, body), sig) {
		return nil, fmt.Errorf("open channel frame %v: sender signature: %w", f.Channel, ErrBadSignature)
	}
	return &ChannelMessage{Body: body, Signed: true, Sender: sender, From: sender.Address()}, nil
}

// IncrementChannelHops adds one hop to an encoded channel frame in place, so
// a forwarder need not re-encode (the tag does not cover the hop count). It
// checks only the header and fails with ErrHopLimit when the hop count has
// reached the hop limit.
func IncrementChannelHops(frame []byte) error {
	switch {
	case len(frame) < ChannelOverhead:
		return fmt.Errorf("increment channel hops: %d bytes: %w", len(frame), ErrTruncated)
	case len(frame) > MaxChannelFrameSize:
		return fmt.Errorf("increment channel hops: %d bytes: %w", len(frame), ErrTooLarge)
	case !isChannelKind(Kind(frame[0])):
		return fmt.Errorf("increment channel hops: kind %v: %w", Kind(frame[0]), ErrUnknownKind)
	}
	if err := checkChannelHops(frame[1]); err != nil {
		return fmt.Errorf("increment channel hops: %w", err)
	}
	if limit, count := frame[1]>>4, frame[1]&0x0f; count >= limit {
		return fmt.Errorf("increment channel hops: %d of %d: %w", count, limit, ErrHopLimit)
	}
	frame[1]++
	return nil
}

func isChannelKind(k Kind) bool { return k == KindChannel || k == KindChannelSigned }

func checkChannelHops(hops byte) error {
	limit, count := hops>>4, hops&0x0f
	if limit == 0 || count > limit {
		return fmt.Errorf("hops 0x%02x: hop count %d, hop limit %d: %w", hops, count, limit, ErrMalformed)
	}
	return nil
}

// channelMessageKeys derives the ChaCha20 and MAC keys of one message.
func channelMessageKeys(key ChannelKey, m channelMeta) (encKey, macKey []byte, err error) {
	info := make([]byte, 0, len(labelChannelKeys)+1+ChannelMessageIDSize+ChannelTimeSize)
	info = append(info, labelChannelKeys...)
	info = append(info, byte(m.kind))
	info = append(info, m.msgID[:]...)
	info = binary.BigEndian.AppendUint32(info, m.time)
	okm, err := hkdf.Key(sha256.New, key[:], m.id[:], string(info), 2*chacha20.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("channel keys: %w", err)
	}
	return okm[:chacha20.KeySize], okm[chacha20.KeySize:], nil
}

// channelTag computes the truncated HMAC over everything but the hop count.
func channelTag(macKey []byte, m channelMeta, ct []byte) [ChannelTagSize]byte {
	mac := hmac.New(sha256.New, macKey)
	hdr := make([]byte, 0, 2+ChannelIDSize+ChannelMessageIDSize+ChannelTimeSize)
	hdr = append(hdr, byte(m.kind), m.hopLimit)
	hdr = append(hdr, m.id[:]...)
	hdr = append(hdr, m.msgID[:]...)
	hdr = binary.BigEndian.AppendUint32(hdr, m.time)
	mac.Write(hdr)
	mac.Write(ct)
	var sum [sha256.Size]byte
	var tag [ChannelTagSize]byte
	copy(tag[:], mac.Sum(sum[:0]))
	return tag
}

// channelSigned returns the bytes a channel sender signs (under
// labelChannelSig): channel ID || message ID || time || hop limit || body.
func channelSigned(m channelMeta, body []byte) []byte {
	b := make([]byte, 0, ChannelIDSize+ChannelMessageIDSize+ChannelTimeSize+1+len(body))
	b = append(b, m.id[:]...)
	b = append(b, m.msgID[:]...)
	b = binary.BigEndian.AppendUint32(b, m.time)
	b = append(b, m.hopLimit)
	return append(b, body...)
}
