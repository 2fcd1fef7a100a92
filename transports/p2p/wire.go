package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// The meshd link wire format.
const (
	// LinkProtocol is the libp2p stream protocol of meshd links.
	LinkProtocol = "/meshd/link/1.0.0"
	// linkVersion is the first byte of the hello.
	linkVersion = 1
	// HelloSize is the size of the hello each side sends first: the link
	// version byte and the encoded public identity.
	HelloSize = 1 + protocol.PublicIdentitySize
	// MaxFrameSize is the largest frame a link carries (70 KiB). A larger
	// length prefix is a protocol error and resets the stream.
	MaxFrameSize = 70 << 10
)

// Link errors.
var (
	// ErrFrameSize reports a frame that is empty or over MaxFrameSize, sent
	// or received.
	ErrFrameSize = errors.New("p2p: frame size out of range")
	// ErrIdentityMismatch reports a hello whose identity is not the one the
	// libp2p connection authenticated.
	ErrIdentityMismatch = errors.New("p2p: mesh identity does not match the libp2p peer")
	// ErrBadHello reports a hello that is not a version-1 hello with a valid
	// public identity.
	ErrBadHello = errors.New("p2p: bad link hello")
)

// appendHello appends the hello for id:
//
//	0      1                                   1250
//	+------+-----------------------------------+
//	| 0x01 | PublicIdentity.MarshalBinary      |
//	+------+-----------------------------------+
func appendHello(b []byte, id *protocol.PublicIdentity) ([]byte, error) {
	b = append(b, linkVersion)
	return id.AppendBinary(b)
}

// parseHello decodes a hello and checks that its identity is the libp2p
// peer remote (whose key the Noise or TLS handshake authenticated).
func parseHello(b []byte, remote peer.ID) (*protocol.PublicIdentity, error) {
	if len(b) != HelloSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadHello, len(b), HelloSize)
	}
	if b[0] != linkVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadHello, b[0], linkVersion)
	}
	id, err := protocol.ParsePublicIdentity(b[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	pid, err := peerIDOf(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	if pid != remote {
		return nil, fmt.Errorf("%w: hello of %s (peer %s) on a connection with %s", ErrIdentityMismatch, id.Address(), pid, remote)
	}
	return id, nil
}

// readHello reads exactly one hello from r.
func readHello(r io.Reader, remote peer.ID) (*protocol.PublicIdentity, error) {
	var b [HelloSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: stream ended inside the hello: %w", ErrBadHello, err)
		}
		return nil, fmt.Errorf("p2p: reading hello: %w", err)
	}
	return parseHello(b[:], remote)
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
