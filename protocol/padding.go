package protocol

import (
	"fmt"
	"slices"
)

// Padding rounds plaintexts up to one of a few bucket sizes before they are
// sealed, so an observer of ciphertext lengths learns only the bucket, not
// the exact length of a message.
//
// A padded plaintext is the message, one 0x80 byte, then zero bytes up to the
// bucket size (the ISO/IEC 7816-4 method), so padding can always be removed
// unambiguously. Messages longer than the largest bucket are rounded up to a
// multiple of it. The zero value adds only the 0x80 marker byte.
type Padding struct {
	// Buckets are the allowed padded sizes, strictly increasing and positive.
	Buckets []int
}

// DefaultPadding is the bucket set used unless configured otherwise: powers
// of two from 64 bytes to 16 KiB.
var DefaultPadding = Padding{Buckets: []int{64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}}

// Validate reports whether the bucket list is usable.
func (p Padding) Validate() error {
	for i, b := range p.Buckets {
		if b <= 0 || (i > 0 && b <= p.Buckets[i-1]) {
			return fmt.Errorf("padding: buckets must be positive and strictly increasing, got %v: %w", p.Buckets, ErrMalformed)
		}
	}
	return nil
}

// Size returns the padded size for an n-byte message, or an error if that
// exceeds limit.
func (p Padding) Size(n, limit int) (int, error) {
	need := n + 1
	if need > limit {
		return 0, fmt.Errorf("padding: %d bytes exceed the limit of %d: %w", n, limit-1, ErrTooLarge)
	}
	size := need
	if len(p.Buckets) > 0 {
		if i, _ := slices.BinarySearch(p.Buckets, need); i < len(p.Buckets) {
			size = p.Buckets[i]
		} else {
			last := p.Buckets[len(p.Buckets)-1]
			size = (need + last - 1) / last * last
		}
	}
	// Never pad past the limit: a message that fits unpadded is padded as
	// far as the limit allows.
	return min(size, limit), nil
}

// Pad returns msg padded to its bucket; the result is at most limit bytes.
func (p Padding) Pad(msg []byte, limit int) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	size, err := p.Size(len(msg), limit)
	if err != nil {
		return nil, err
	}
	out := make([]byte, size)
	copy(out, msg)
	out[len(msg)] = 0x80
	return out, nil
}

// Unpad removes padding added by Pad.
func Unpad(b []byte) ([]byte, error) {
	i := len(b) - 1
	for i >= 0 && b[i] == 0 {
		i--
	}
	if i < 0 || b[i] != 0x80 {
		return nil, fmt.Errorf("padding: no end marker: %w", ErrMalformed)
	}
	return b[:i], nil
}
