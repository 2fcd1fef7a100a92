package p2p

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// Host key certificates. The libp2p host key is a key of its own, not the
// identity's signing key, so no key signs in two protocols (Noise/TLS
// handshakes and mesh objects). The identity vouches for the host key with
// a certificate the link hello carries.
const (
	// hostCertLabel is the Identity.Sign label of a host key certificate.
	hostCertLabel = "hostkey/v1"
	// HostCertSize is the size of an encoded certificate.
	HostCertSize = ed25519.PublicKeySize + 4 + 4 + protocol.SignatureSize
	// HostCertLifetime is the lifetime of the certificates a host issues.
	// A host signs a new one when less than half of it is left, so a peer
	// whose clock is up to half of it ahead still accepts it.
	HostCertLifetime = 30 * 24 * time.Hour
	// MaxHostCertLifetime bounds expires-issued of a certificate a host
	// accepts: a certificate lives at most this long after its identity
	// last signed it, so a stolen host key without the identity key stops
	// working after at most this long.
	MaxHostCertLifetime = 90 * 24 * time.Hour
)

// ErrHostKey reports a host key that is missing, not Ed25519 or the
// identity's own signing key.
var ErrHostKey = errors.New("p2p: bad host key")

// hostCert is a decoded host key certificate:
//
//	0                32       36        40
//	+----------------+--------+---------+-----------+
//	| Ed25519 host   | issued | expires | signature |
//	| public key     | u32 s  | u32 s   | 64 bytes  |
//	+----------------+--------+---------+-----------+
//
// The signature is Identity.Sign("hostkey/v1", peer ID || issued ||
// expires), where peer ID is the binary libp2p peer ID of the host key (an
// identity multihash of the key, 38 bytes). Signing the peer ID, the name
// the Noise or TLS handshake authenticates, rather than the key, ties the
// certificate to exactly what the verifier compares.
type hostCert struct {
	key     ed25519.PublicKey
	peer    peer.ID
	issued  protocol.Timestamp
	expires protocol.Timestamp
}

// hostPeerID returns the libp2p peer ID of an Ed25519 public key.
func hostPeerID(key ed25519.PublicKey) (peer.ID, error) {
	pub, err := crypto.UnmarshalEd25519PublicKey(key)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrHostKey, err)
	}
	return peer.IDFromPublicKey(pub)
}

// hostCertSigned returns the bytes a certificate's signature covers.
func hostCertSigned(p peer.ID, issued, expires protocol.Timestamp) []byte {
	b := append([]byte(nil), p...)
	b = binary.BigEndian.AppendUint32(b, uint32(issued))
	return binary.BigEndian.AppendUint32(b, uint32(expires))
}

// appendHostCert appends a certificate by id for the host key key.
func appendHostCert(b []byte, id *protocol.Identity, key ed25519.PublicKey, issued, expires protocol.Timestamp) ([]byte, error) {
	p, err := hostPeerID(key)
	if err != nil {
		return nil, err
	}
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, uint32(issued))
	b = binary.BigEndian.AppendUint32(b, uint32(expires))
	return append(b, id.Sign(hostCertLabel, hostCertSigned(p, issued, expires))...), nil
}

// parseHostCert decodes a certificate and checks that id signed it and
// that it is in force at now. It does not compare the peer: the caller
// knows which one it expects.
func parseHostCert(b []byte, id protocol.CompactIdentity, now time.Time) (*hostCert, error) {
	if len(b) != HostCertSize {
		return nil, fmt.Errorf("p2p: host certificate of %d bytes, want %d: %w", len(b), HostCertSize, protocol.ErrMalformed)
	}
	c := &hostCert{
		key:     ed25519.PublicKey(b[:ed25519.PublicKeySize:ed25519.PublicKeySize]),
		issued:  protocol.Timestamp(binary.BigEndian.Uint32(b[32:])),
		expires: protocol.Timestamp(binary.BigEndian.Uint32(b[36:])),
	}
	p, err := hostPeerID(c.key)
	if err != nil {
		return nil, err
	}
	c.peer = p
	if !id.Verify(hostCertLabel, hostCertSigned(p, c.issued, c.expires), b[40:]) {
		return nil, fmt.Errorf("p2p: host certificate for %s not signed by %s: %w", p, id.Address(), protocol.ErrBadSignature)
	}
	if c.expires <= c.issued || c.expires.Time().Sub(c.issued.Time()) > MaxHostCertLifetime {
		return nil, fmt.Errorf("p2p: host certificate lifetime %s..%s (limit %s): %w", c.issued.Time(), c.expires.Time(), MaxHostCertLifetime, protocol.ErrMalformed)
	}
	if !now.Before(c.expires.Time()) {
		return nil, fmt.Errorf("p2p: host certificate for %s expired at %s: %w", p, c.expires.Time(), protocol.ErrExpired)
	}
	return c, nil
}

// checkHostKey checks a Config's host key against its identity.
func checkHostKey(key ed25519.PrivateKey, id *protocol.Identity) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: HostKey is required (an Ed25519 private key, %d bytes; got %d)", ErrHostKey, ed25519.PrivateKeySize, len(key))
	}
	own := id.Compact().SigningKey
	if key.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(own[:])) {
		return fmt.Errorf("%w: HostKey is the identity's signing key; the host key must be a key of its own", ErrHostKey)
	}
	return nil
}
