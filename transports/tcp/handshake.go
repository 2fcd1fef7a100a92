package tcp

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"meshd.dev/meshd/protocol"
)

// Signature labels (protocol.Identity.Sign puts "meshd-ext/" in front):
// one per role, so that neither side's proof can be reflected back as the
// other's.
const (
	labelInitiator = "tcp-link/v1/initiator"
	labelResponder = "tcp-link/v1/responder"
	keyInfo        = "meshd tcp link v1 keys"
)

// session is what a completed handshake yields.
type session struct {
	peer *protocol.PublicIdentity
	send *sealer
	recv *opener
}

// handshake runs the handshake on c (the caller sets its deadline).
// initiator is the side that dialled. want, if not zero, is the mesh
// address the peer must prove. rnd supplies the ephemeral key and nonce.
//
// Both sides send a hello (ephemeral X25519 key, fresh nonce), derive the
// two record keys from the X25519 secret salted with the transcript hash,
// and then send, sealed, their public identity and a signature by it over
// the transcript hash. So each side proves possession of its identity key
// for this very handshake (both nonces and both ephemeral keys are in the
// transcript: a replayed or relayed proof does not verify), and everything
// after the hellos is encrypted and authenticated under keys only the two
// ends hold (a man in the middle who swaps ephemeral keys makes the
// transcripts differ and the signatures fail).
func handshake(c net.Conn, self *protocol.Identity, initiator bool, want protocol.Address, rnd io.Reader) (*session, error) {
	eph, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("tcp: ephemeral key: %w", err)
	}
	var mine hello
	copy(mine.key[:], eph.PublicKey().Bytes())
	if _, err := io.ReadFull(rnd, mine.nonce[:]); err != nil {
		return nil, fmt.Errorf("tcp: nonce: %w", err)
	}
	theirs, err := exchangeHellos(c, &mine)
	if err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(theirs.key[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	secret, err := eph.ECDH(pub) // refuses a low-order key (all-zero secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	hi, hr := &mine, &theirs
	if !initiator {
		hi, hr = hr, hi
	}
	th := transcript(hi, hr)
	s, err := newSession(secret, th[:], initiator)
	if err != nil {
		return nil, err
	}
	myLabel, peerLabel := labelInitiator, labelResponder
	if !initiator {
		myLabel, peerLabel = peerLabel, myLabel
	}
	body, err := self.Public().AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	body = append(body, self.Sign(myLabel, th[:])...)
	if _, err := c.Write(s.send.seal(nil, recAuth, body)); err != nil {
		return nil, fmt.Errorf("tcp: sending identity proof: %w", err)
	}
	typ, b, err := s.recv.readRecordMax(c, authRecord)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the identity proof: %w", ErrAuth, err)
	}
	if typ != recAuth {
		return nil, fmt.Errorf("%w: record type %d where the identity proof belongs", ErrAuth, typ)
	}
	id, sig, err := parseAuth(b)
	if err != nil {
		return nil, err
	}
	if !id.Compact().Verify(peerLabel, th[:], sig) {
		return nil, fmt.Errorf("%w: %s's signature does not cover this handshake", ErrAuth, id.Address())
	}
	if id.Address() == self.Address() {
		return nil, fmt.Errorf("%w: the peer is this node", ErrAuth)
	}
	if !want.IsZero() && id.Address() != want {
		return nil, fmt.Errorf("%w: peer is %s, configured %s", ErrAuth, id.Address(), want)
	}
	s.peer = id
	return s, nil
}

// exchangeHellos sends mine and reads the peer's concurrently (both sides
// write first; a hello fits any socket buffer, so neither blocks).
func exchangeHellos(c net.Conn, mine *hello) (hello, error) {
	if _, err := c.Write(mine.marshal()); err != nil {
		return hello{}, fmt.Errorf("tcp: sending hello: %w", err)
	}
	var b [HelloSize]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return hello{}, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	return parseHello(b[:])
}

// transcript hashes both hellos, initiator's first.
func transcript(hi, hr *hello) [32]byte {
	h := sha256.New()
	h.Write([]byte("meshd tcp link v1"))
	h.Write(hi.marshal())
	h.Write(hr.marshal())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// newSession derives the two record keys: the first 32 bytes seal what
// the initiator sends, the next 32 what the responder sends.
func newSession(secret, th []byte, initiator bool) (*session, error) {
	k, err := hkdf.Key(sha256.New, secret, th, keyInfo, 2*chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	i2r, err := chacha20poly1305.New(k[:32])
	if err != nil {
		return nil, err
	}
	r2i, err := chacha20poly1305.New(k[32:])
	if err != nil {
		return nil, err
	}
	if initiator {
		return &session{send: &sealer{aead: i2r}, recv: &opener{aead: r2i}}, nil
	}
	return &session{send: &sealer{aead: r2i}, recv: &opener{aead: i2r}}, nil
}

// handshakeDeadline is the deadline of a handshake starting now.
func handshakeDeadline(timeout time.Duration) time.Time { return time.Now().Add(timeout) }
