package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// The meshd link wire format.
const (
	// LinkProtocol is the libp2p stream protocol of meshd links.
	// Version 2 hellos carry a host key certificate; a version 1 node
	// (whose host key was its identity key) does not speak it, so the two
	// never open a link stream that would fail.
	LinkProtocol = "/meshd/link/2.0.0"
	// HopAckProtocol is a marker a node registers (identify lists it) when
	// it acknowledges envelopes hop by hop on its links. An older meshd
	// speaks LinkProtocol but never acknowledges: a link to it runs
	// without hop acks, or every envelope forwarded to it would be
	// retransmitted and its route dropped for want of an ack.
	HopAckProtocol = "/meshd/hopack/1.0.0"
	// linkVersion is the first byte of the hello.
	linkVersion = 2
	// HelloSize is the size of the hello each side sends first: the link
	// version byte, the encoded public identity and the host key
	// certificate.
	HelloSize = 1 + protocol.PublicIdentitySize + HostCertSize
	// MaxFrameSize is the largest frame a link carries (70 KiB). A larger
	// length prefix is a protocol error and resets the stream.
	MaxFrameSize = 70 << 10
)

// Link errors.
var (
	// ErrFrameSize reports a frame that is empty or over MaxFrameSize, sent
	// or received.
	ErrFrameSize = errors.New("p2p: frame size out of range")
	// ErrIdentityMismatch reports a hello whose identity did not certify
	// the libp2p peer the connection authenticated: the certificate names
	// another peer, is not signed by the identity, or has expired.
	ErrIdentityMismatch = errors.New("p2p: mesh identity does not match the libp2p peer")
	// ErrBadHello reports a hello that is not a version-1 hello with a valid
	// public identity.
	ErrBadHello = errors.New("p2p: bad link hello")
	// ErrRefusedPeer reports a link or frame the Guard refused.
	ErrRefusedPeer = errors.New("p2p: refused by the guard")
)

// appendHello appends the hello for id with the certificate cert of the
// host key:
//
//	0      1                           1250                        1354
//	+------+---------------------------+---------------------------+
//	| 0x02 | PublicIdentity            | host key certificate      |
//	|      | .MarshalBinary (1249)     | (104, see hostCert)       |
//	+------+---------------------------+---------------------------+
func appendHello(b []byte, id *protocol.PublicIdentity, cert []byte) ([]byte, error) {
	if len(cert) != HostCertSize {
		return nil, fmt.Errorf("p2p: host certificate of %d bytes, want %d: %w", len(cert), HostCertSize, protocol.ErrMalformed)
	}
	b = append(b, linkVersion)
	b, err := id.AppendBinary(b)
	if err != nil {
		return nil, err
	}
	return append(b, cert...), nil
}

// parseHello decodes a hello and checks that its identity certified the
// libp2p peer remote (whose host key the Noise or TLS handshake
// authenticated) with a certificate in force at now.
func parseHello(b []byte, remote peer.ID, now time.Time) (*protocol.PublicIdentity, error) {
	if len(b) != HelloSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadHello, len(b), HelloSize)
	}
	if b[0] != linkVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadHello, b[0], linkVersion)
	}
	end := 1 + protocol.PublicIdentitySize
	id, err := protocol.ParsePublicIdentity(b[1:end])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	cert, err := parseHostCert(b[end:], id.Compact(), now)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrIdentityMismatch, id.Address(), err)
	}
	if cert.peer != remote {
		return nil, fmt.Errorf("%w: %s certified peer %s, the connection is with %s", ErrIdentityMismatch, id.Address(), cert.peer, remote)
	}
	return id, nil
}

// readHello reads exactly one hello from r.
func readHello(r io.Reader, remote peer.ID, now time.Time) (*protocol.PublicIdentity, error) {
	var b [HelloSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: stream ended inside the hello: %w", ErrBadHello, err)
		}
		return nil, fmt.Errorf("p2p: reading hello: %w", err)
	}
	return parseHello(b[:], remote, now)
}

// appendFrame appends one frame: its length as a uvarint, then its bytes.
//
//	+----------------------+------------------------+
//	| length (uvarint,     | frame (1..71680 bytes) |
//	|  minimal, 1-3 bytes) |                        |
//	+----------------------+------------------------+
func appendFrame(b, frame []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(frame)))
	return append(b, frame...)
}

// checkFrameSize reports whether n is a valid frame length.
func checkFrameSize(n uint64) error {
	if n == 0 || n > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes (1..%d)", ErrFrameSize, n, MaxFrameSize)
	}
	return nil
}

// maxLengthBytes is the longest length prefix: MaxFrameSize < 1<<21 fits
// in 3 uvarint bytes.
const maxLengthBytes = 3

// readLength reads a frame's uvarint length prefix. Only the minimal
// encoding of at most maxLengthBytes bytes is accepted, so every frame has
// exactly one encoding. io.EOF means the stream ended before the prefix.
func readLength(r io.ByteReader) (uint64, error) {
	var n uint64
	for i := range maxLengthBytes {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("%w: length prefix not minimally encoded", ErrFrameSize)
			}
			return n | uint64(b)<<(7*i), nil
		}
		n |= uint64(b&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: length prefix longer than %d bytes", ErrFrameSize, maxLengthBytes)
}

// readFrame reads one frame. The length is checked before anything is
// allocated, so a hostile prefix costs at most MaxFrameSize bytes. io.EOF
// means the stream ended cleanly between frames.
func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := readLength(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF // clean end between frames
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("p2p: stream ended inside a frame length: %w", err)
		}
		return nil, fmt.Errorf("p2p: frame length: %w", err)
	}
	if err := checkFrameSize(n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("p2p: stream ended inside a %d-byte frame: %w", n, err)
	}
	return b, nil
}
