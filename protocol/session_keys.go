package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// Key schedule 3 of route session data frames (docs/protocol.md section
// 10), used by modes 3 and 4. Schedule 2 (modes 1 and 2, kept so that
// older initiators still get sessions) spent five HMAC-SHA-256 computations
// and a ChaCha20 pass on each frame: two for the chain step, two for the
// HKDF-Expand of the message key into a cipher key and a MAC key, and the
// tag over the whole frame, each with a fresh HMAC object. Schedule 3
// spends two HMACs per step (the message key and the next chain key, each
// one HMAC of the chain key) and uses the message key directly as the
// ChaCha20-Poly1305 key of its one frame:
//
//	mk[n]   = HMAC-SHA-256(ck[n], "meshd/session-msg/v3" || 0x01)
//	ck[n+1] = HMAC-SHA-256(ck[n], "meshd/session-msg/v3" || 0x02)
//	frame   = header || ChaCha20-Poly1305(key mk[n], nonce 0, ad header with the index bits zeroed)
//
// Why this is sound: each message key seals exactly one frame (the
// counter never repeats within a chain: a responder persists its state
// before a frame sealed with it leaves and seals nothing under a state
// restored at a restart, which may be an older backup's; an initiator
// drops its sessions at a restart), so the fixed nonce never meets the same key twice, as
// in schedule 2's one-time ChaCha20 key; the chain is one-way (HMAC is a
// PRF in its key), so a stolen chain key opens no earlier frame (forward
// secrecy per step) and an erased message key cannot be recomputed from
// the next chain key; the label separates these outputs from every other
// HMAC of the protocol, and the chain keys themselves come from a
// transcript that names the mode, so no schedule-2 or lite chain shares a
// key with a schedule-3 chain. Poly1305 with a one-time key is a 16-byte
// tag with a forgery chance of at most 8*ceil(L/16)/2^106 per try, L the
// MAC's input (header and ciphertext each padded to 16 bytes, 16 bytes of
// lengths; Bernstein's bound): 2^-100 for a 100-byte message, 2^-93 for a
// 16 KiB frame. That is weaker than the 2^-128 of the truncated HMAC it
// replaces and still far beyond reach: every try is a frame on the link,
// refused and counted, and changes nothing. Unlike schedule 2's HMAC, a
// message key that sealed two frames gives away its Poly1305 key (forgery
// under that counter), not only the XOR of two plaintexts.

const labelSessionMsgKey3 = "meshd/session-msg/v3"

// ratchet3 is one step of a schedule-3 chain (TestRatchetsAreHMAC,
// BenchmarkRatchet3).
func ratchet3(ck [32]byte) (mk, next [32]byte) { return hmacSteps(&ck, labelSessionMsgKey3) }

// hmacSteps is the two HMAC-SHA-256 (RFC 2104) of a chain step, of the
// label followed by 0x01 (the message key) and by 0x02 (the next chain
// key), computed without crypto/hmac's objects: each end runs one step per
// frame. The key is 32 bytes, shorter than SHA-256's block, so it is used
// zero-padded; the two MACs share their padded key blocks, and every
// buffer stays on the stack: four sha256.Sum256, no allocation. The label
// is a constant of at most 31 bytes.
func hmacSteps(ck *[32]byte, label string) (mk, next [32]byte) {
	if len(label) > 31 {
		panic("protocol: hmacSteps: label of " + strconv.Itoa(len(label)) + " bytes") // a constant: never at run time
	}
	var inner [sha256.BlockSize + 32]byte
	var outer [sha256.BlockSize + sha256.Size]byte
	hmacPads(ck, (*[sha256.BlockSize]byte)(inner[:]), (*[sha256.BlockSize]byte)(outer[:]))
	n := sha256.BlockSize + copy(inner[sha256.BlockSize:31+sha256.BlockSize], label) + 1
	inner[n-1] = 0x01
	ih := sha256.Sum256(inner[:n])
	copy(outer[sha256.BlockSize:], ih[:])
	mk = sha256.Sum256(outer[:])
	inner[n-1] = 0x02
	ih = sha256.Sum256(inner[:n])
	copy(outer[sha256.BlockSize:], ih[:])
	next = sha256.Sum256(outer[:])
	return mk, next
}

// hmacPads fills HMAC's inner and outer key blocks for a 32-byte key: the
// key zero-padded to a block, XORed with 0x36 and 0x5c.
func hmacPads(key *[32]byte, inner, outer *[sha256.BlockSize]byte) {
	for i := 0; i < len(key); i += 8 {
		k := binary.LittleEndian.Uint64(key[i:])
		binary.LittleEndian.PutUint64(inner[i:], k^0x3636363636363636)
		binary.LittleEndian.PutUint64(outer[i:], k^0x5c5c5c5c5c5c5c5c)
	}
	for i := len(key); i < sha256.BlockSize; i++ {
		inner[i], outer[i] = 0x36, 0x5c
	}
}

// zeroNonce is the nonce of every schedule-3 frame: each key seals one
// frame. A variable, not a local: a local passed to the AEAD's interface
// method escapes and costs an allocation per frame. Nothing writes it.
var zeroNonce [chacha20poly1305.NonceSize]byte

// sessionAD fills ad with the data frame's associated data: its header
// with the receiver index bits zeroed (relays rewrite them). ad is the
// session's scratch buffer, for the same reason as zeroNonce.
func sessionAD(ad *[sessionHeaderSize]byte, frame []byte) []byte {
	copy(ad[:], frame[:sessionHeaderSize])
	ad[5] &^= hopIndexMask
	return ad[:]
}

// seal3 appends the ciphertext and tag of plaintext to frame, which holds
// the header.
func seal3(mk [32]byte, ad *[sessionHeaderSize]byte, frame, plaintext []byte) []byte {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		panic("protocol: chacha20poly1305: " + err.Error()) // a 32-byte key cannot fail
	}
	return aead.Seal(frame, zeroNonce[:], plaintext, sessionAD(ad, frame))
}

// open3 authenticates and decrypts a schedule-3 frame.
func open3(mk [32]byte, ad *[sessionHeaderSize]byte, frame []byte) ([]byte, bool) {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		panic("protocol: chacha20poly1305: " + err.Error())
	}
	pt, err := aead.Open(make([]byte, 0, len(frame)-SessionFrameOverhead), zeroNonce[:], frame[sessionHeaderSize:], sessionAD(ad, frame))
	return pt, err == nil
}
