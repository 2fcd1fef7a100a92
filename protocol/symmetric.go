package protocol

import "golang.org/x/crypto/chacha20"

// oneTimeXOR encrypts (or decrypts) src into dst with ChaCha20 under a key
// that is used for one message only, which is what makes the fixed all-zero
// nonce safe. Lite frames (one key per ratchet step) and channel frames (one
// key per message ID) share it.
func oneTimeXOR(key, dst, src []byte) {
	var nonce [chacha20.NonceSize]byte
	c, err := chacha20.NewUnauthenticatedCipher(key, nonce[:])
	if err != nil {
		// Keys come from HKDF at a fixed 32 bytes; any other length is a
		// programming error, not input.
		panic("protocol: chacha20: " + err.Error())
	}
	c.XORKeyStream(dst, src)
}
