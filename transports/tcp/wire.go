package tcp

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"meshd.dev/meshd/protocol"
)

// Wire constants; the layouts are in the package doc.
const (
	// helloMagic starts every hello so that a stray client (an HTTP probe,
	// a port scanner) is told apart from a meshd peer at the first bytes.
	helloMagic = "MSHD"
	// helloVersion is the handshake version.
	helloVersion = 1
	// keySize is an X25519 public key; nonceSize the fresh nonce of a
	// hello.
	keySize   = 32
	nonceSize = 32
	// HelloSize is the size of a hello.
	HelloSize = len(helloMagic) + 1 + keySize + nonceSize
	// authSize is the body of an auth record: the public identity and a
	// signature over the transcript.
	authSize = protocol.PublicIdentitySize + protocol.SignatureSize
	// MaxFrameSize is the largest frame a link carries (64 KiB, the
	// engine's MTU for TCP links).
	MaxFrameSize = 64 << 10
	// tagSize is the AEAD tag (Poly1305).
	tagSize = 16
	// maxRecord is the largest sealed record: type byte, body, tag.
	maxRecord = 1 + max(MaxFrameSize, authSize) + tagSize
)

// Record types (the first byte of a record's plaintext).
const (
	recData      = 1 // a frame
	recKeepalive = 2 // nothing; proves the peer is alive
	recClose     = 3 // an orderly close; the body is a reason for logs
	recAuth      = 4 // the handshake's identity proof
)

// Wire errors.
var (
	// ErrBadHello: the first bytes are not a meshd TCP hello.
	ErrBadHello = errors.New("tcp: bad hello")
	// ErrBadRecord: a record that is too long, too short, fails
	// authentication or has an unknown type. The link is closed.
	ErrBadRecord = errors.New("tcp: bad record")
	// ErrAuth: the peer's identity proof is malformed, its signature does
	// not verify over this handshake's transcript, or it names an identity
	// other than the one configured for the peer.
	ErrAuth = errors.New("tcp: peer authentication failed")
)

// hello is the first message of each side.
type hello struct {
	key   [keySize]byte   // X25519 ephemeral public key
	nonce [nonceSize]byte // fresh random
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, HelloSize)
	b = append(b, helloMagic...)
	b = append(b, helloVersion)
	b = append(b, h.key[:]...)
	return append(b, h.nonce[:]...)
}

// parseHello decodes a hello.
func parseHello(b []byte) (hello, error) {
	var h hello
	if len(b) != HelloSize {
		return h, fmt.Errorf("%w: %d bytes, want %d", ErrBadHello, len(b), HelloSize)
	}
	if string(b[:4]) != helloMagic {
		return h, fmt.Errorf("%w: not a meshd TCP link (magic %q)", ErrBadHello, b[:4])
	}
	if b[4] != helloVersion {
		return h, fmt.Errorf("%w: version %d, want %d", ErrBadHello, b[4], helloVersion)
	}
	copy(h.key[:], b[5:5+keySize])
	copy(h.nonce[:], b[5+keySize:])
	return h, nil
}

// parseAuth decodes an auth record's body: the peer's public identity and
// its signature (checked by the caller against the transcript).
func parseAuth(b []byte) (*protocol.PublicIdentity, []byte, error) {
	if len(b) != authSize {
		return nil, nil, fmt.Errorf("%w: identity proof of %d bytes, want %d", ErrAuth, len(b), authSize)
	}
	id, err := protocol.ParsePublicIdentity(b[:protocol.PublicIdentitySize])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return id, b[protocol.PublicIdentitySize:], nil
}

// sealer writes records under one key with a counter nonce.
type sealer struct {
	aead cipher.AEAD
	n    uint64
}

// seal appends the record (length, then ciphertext of typ || body) to dst.
func (s *sealer) seal(dst []byte, typ byte, body []byte) []byte {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(1+len(body)+tagSize))
	dst = append(dst, hdr[:]...)
	// Seal in place: the plaintext is appended where the ciphertext goes
	// (Seal allows exact overlap), so no buffer is made per record.
	start := len(dst)
	dst = append(append(dst, typ), body...)
	dst = s.aead.Seal(dst[:start], s.nonce(), dst[start:], hdr[:])
	s.n++
	return dst
}

func (s *sealer) nonce() []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], s.n)
	return n[:]
}

// opener reads records under one key.
type opener struct {
	aead cipher.AEAD
	n    uint64
	buf  []byte
}

// readRecord reads one record from r and opens it. A length over
// maxRecord is refused before anything is allocated for it, so a peer
// announcing an endless frame costs nothing.
func (o *opener) readRecord(r io.Reader) (typ byte, body []byte, err error) {
	return o.readRecordMax(r, maxRecord)
}

// authRecord is the size of the sealed identity proof, the only record a
// handshake reads.
const authRecord = 1 + authSize + tagSize

// readRecordMax is readRecord for records of at most limit bytes: the
// handshake allows only the identity proof's size, so a peer that has
// proved nothing yet cannot make it wait for (and buffer) a 64 KiB body.
func (o *opener) readRecordMax(r io.Reader, limit uint32) (typ byte, body []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 1+tagSize || n > limit {
		return 0, nil, fmt.Errorf("%w: length %d (want %d..%d)", ErrBadRecord, n, 1+tagSize, limit)
	}
	if cap(o.buf) < int(n) {
		o.buf = make([]byte, n)
	}
	ct := o.buf[:n]
	if _, err := io.ReadFull(r, ct); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("%w: truncated: %w", ErrBadRecord, err)
	}
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], o.n)
	pt, err := o.aead.Open(ct[:0], nonce[:], ct, hdr[:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: authentication failed (corrupted, replayed or forged)", ErrBadRecord)
	}
	o.n++
	return pt[0], pt[1:], nil
}
