package protocol

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
)

// Channel frame sizes and limits.
const (
	// ChannelKeySize is the size of a channel's shared secret key.
	ChannelKeySize = 32
	// ChannelIDSize is the size of a channel ID.
	ChannelIDSize = 4
	// ChannelMessageIDSize is the size of a channel message ID.
	ChannelMessageIDSize = 8
	// ChannelTagSize is the size of the truncated HMAC-SHA256 tag.
	ChannelTagSize = 8
	// ChannelOverhead is what a channel frame adds to an unsigned body:
	// kind, hops, channel ID, message ID and tag.
	ChannelOverhead = 1 + 1 + ChannelIDSize + ChannelMessageIDSize + ChannelTagSize // 22
	// ChannelSignedOverhead is what a signed channel frame adds to its body:
	// ChannelOverhead plus the sender's compact identity and signature.
	ChannelSignedOverhead = ChannelOverhead + channelSenderSize // 150
	// MaxChannelFrameSize bounds an encoded channel frame.
	MaxChannelFrameSize = 64 * 1024
	// MaxChannelHops is the largest hop limit a channel frame can carry (the
	// hop limit is a 4-bit field).
	MaxChannelHops = 15

	channelHeaderSize = 1 + 1 + ChannelIDSize + ChannelMessageIDSize // 14
	channelSenderSize = CompactIdentitySize + SignatureSize          // 128
)

// Domain-separation labels of channel frames.
const (
	labelChannelID   = "meshd/channel-id/v1"
	labelChannelKeys = "meshd/channel/v1"
	labelChannelSig  = "meshd/channel-sig/v1"
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

// ChannelFrame is a channel broadcast frame, as flooded over LoRa and TCP
// mesh links and published on gossip topics:
//
//	0      1      2          6            14           14+n      22+n
//	+------+------+----------+------------+------------+---------+
//	| kind | hops | channel  | message ID | ciphertext | tag (8) |
//	+------+------+----------+------------+------------+---------+
//
//	hops:  bits 7-4 hop limit (1..15), bits 3-0 hop count (0..limit)
//
// kind is 0x15 (KindChannel) or 0x16 (KindChannelSigned). The hops byte is
// the only field a forwarder changes (IncrementChannelHops) and the only one
// not authenticated. The message ID is 8 random bytes; with the channel ID it
// is the flooding dedup key (DedupKey).
//
// Each message has its own keys, derived with HKDF-SHA256 (RFC 5869):
//
//	secret = channel key, salt = channel ID,
//	info   = "meshd/channel/v1" || kind || message ID
//	output = ChaCha20 key (32) || MAC key (32)
//
// The plaintext is encrypted with ChaCha20 under an all-zero 12-byte nonce
// (the key is unique per message), then authenticated (encrypt-then-MAC):
//
//	tag = HMAC-SHA256(MAC key, kind || channel ID || message ID || ciphertext)[:8]
//
// The plaintext of an unsigned frame (0x15) is the body. The plaintext of a
// signed frame (0x16) is
//
//	0                  64                     128          128+m
//	+------------------+----------------------+------------+
//	| sender compact   | Ed25519 signature    | body       |
//	| identity         |                      |            |
//	+------------------+----------------------+------------+
//
// where the signature is over "meshd/channel-sig/v1" || 0x00 || channel ID ||
// message ID || body. The sender is encrypted, so only channel members learn
// who sent a message.
type ChannelFrame struct {
	Kind       Kind // KindChannel or KindChannelSigned
	HopLimit   uint8
	HopCount   uint8
	Channel    ChannelID
	MessageID  [ChannelMessageIDSize]byte
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

// SealChannel encrypts body for the channel of key and returns the encoded
// frame with a fresh random message ID from rand, hop limit hopLimit (1..15)
// and hop count 0. With a nil signer the frame is unsigned (KindChannel,
// ChannelOverhead bytes of overhead); otherwise signer signs it inside the
// encryption (KindChannelSigned, ChannelSignedOverhead bytes of overhead).
func SealChannel(rand io.Reader, key ChannelKey, hopLimit uint8, body []byte, signer *Identity) ([]byte, error) {
	if hopLimit < 1 || hopLimit > MaxChannelHops {
		return nil, fmt.Errorf("seal channel: hop limit %d not in 1..%d: %w", hopLimit, MaxChannelHops, ErrMalformed)
	}
	kind, ptLen := KindChannel, len(body)
	if signer != nil {
		if signer.pub == nil || len(signer.sign) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("seal channel: signer is not an initialized identity: %w", ErrMalformed)
		}
		kind, ptLen = KindChannelSigned, ptLen+channelSenderSize
	}
	if ptLen > MaxChannelFrameSize-ChannelOverhead {
		return nil, fmt.Errorf("seal channel: body of %d bytes: %w", len(body), ErrTooLarge)
	}
	var msgID [ChannelMessageIDSize]byte
	if _, err := io.ReadFull(rand, msgID[:]); err != nil {
		return nil, fmt.Errorf("seal channel: reading randomness: %w", err)
	}
	id := key.ID()
	encKey, macKey, err := channelMessageKeys(key, id, kind, msgID)
	if err != nil {
		return nil, err
	}

	out := make([]byte, 0, ChannelOverhead+ptLen)
	out = append(out, byte(kind), hopLimit<<4)
	out = append(out, id[:]...)
	out = append(out, msgID[:]...)
	if signer != nil {
		out = signer.Compact().appendTo(out)
		out = append(out, signer.signLabelled(labelChannelSig, channelSigned(id, msgID, body))...)
	}
	out = append(out, body...)
	ct := out[channelHeaderSize:]
	oneTimeXOR(encKey, ct, ct)
	tag := channelTag(macKey, kind, id, msgID, ct)
	return append(out, tag[:]...), nil
}

// ParseChannelFrame decodes a channel frame strictly: known kind, hop limit
// 1..15 and hop count <= limit, at most MaxChannelFrameSize bytes, and for a
// signed frame room for the sender block. It does not authenticate; see
// Open. The frame's Ciphertext aliases b.
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
	b = append(b, f.Ciphertext...)
	return append(b, f.Tag[:]...)
}

// DedupKey returns channel ID || message ID, the key under which flooding
// and gossip suppress duplicates. Forwarders that do not hold the channel
// key cannot authenticate it.
func (f *ChannelFrame) DedupKey() [ChannelIDSize + ChannelMessageIDSize]byte {
	var k [ChannelIDSize + ChannelMessageIDSize]byte
	copy(k[:], f.Channel[:])
	copy(k[ChannelIDSize:], f.MessageID[:])
	return k
}

// Open authenticates and decrypts the frame with key. It fails with
// ErrNotForUs when the frame names another channel, with ErrDecrypt when
// the tag does not verify (wrong key or a changed bit anywhere but the hops
// byte), and with ErrBadSignature when a signed frame's inner signature does
// not verify. For a signed frame it returns the sender.
func (f *ChannelFrame) Open(key ChannelKey) (*ChannelMessage, error) {
	if !isChannelKind(f.Kind) {
		return nil, fmt.Errorf("open channel frame: kind %v: %w", f.Kind, ErrUnknownKind)
	}
	id := key.ID()
	if f.Channel != id {
		return nil, fmt.Errorf("open channel frame: channel %v, key is for %v: %w", f.Channel, id, ErrNotForUs)
	}
	encKey, macKey, err := channelMessageKeys(key, id, f.Kind, f.MessageID)
	if err != nil {
		return nil, err
	}
	tag := channelTag(macKey, f.Kind, id, f.MessageID, f.Ciphertext)
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
	if !sender.verify(labelChannelSig, channelSigned(id, f.MessageID, body), sig) {
		return nil, fmt.Errorf("open channel frame %v: sender signature: %w", f.Channel, ErrBadSignature)
	}
	return &ChannelMessage{Body: body, Signed: true, Sender: sender, From: sender.Address()}, nil
}

// IncrementChannelHops adds one hop to an encoded channel frame in place, so
// a forwarder need not re-encode (the tag does not cover the hops byte). It
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
func channelMessageKeys(key ChannelKey, id ChannelID, kind Kind, msgID [ChannelMessageIDSize]byte) (encKey, macKey []byte, err error) {
	info := make([]byte, 0, len(labelChannelKeys)+1+ChannelMessageIDSize)
	info = append(info, labelChannelKeys...)
	info = append(info, byte(kind))
	info = append(info, msgID[:]...)
	okm, err := hkdf.Key(sha256.New, key[:], id[:], string(info), 2*chacha20.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("channel keys: %w", err)
	}
	return okm[:chacha20.KeySize], okm[chacha20.KeySize:], nil
}

// channelTag computes the truncated HMAC over everything but the hops byte.
func channelTag(macKey []byte, kind Kind, id ChannelID, msgID [ChannelMessageIDSize]byte, ct []byte) [ChannelTagSize]byte {
	m := hmac.New(sha256.New, macKey)
	var hdr [1 + ChannelIDSize + ChannelMessageIDSize]byte
	hdr[0] = byte(kind)
	copy(hdr[1:], id[:])
	copy(hdr[1+ChannelIDSize:], msgID[:])
	m.Write(hdr[:])
	m.Write(ct)
	var sum [sha256.Size]byte
	var tag [ChannelTagSize]byte
	copy(tag[:], m.Sum(sum[:0]))
	return tag
}

// channelSigned returns the bytes a channel sender signs (under
// labelChannelSig): channel ID || message ID || body.
func channelSigned(id ChannelID, msgID [ChannelMessageIDSize]byte, body []byte) []byte {
	b := make([]byte, 0, ChannelIDSize+ChannelMessageIDSize+len(body))
	b = append(b, id[:]...)
	b = append(b, msgID[:]...)
	return append(b, body...)
}
