package fapp

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// reader decodes fields in order and remembers the first error, so decoders
// read straight through and check once. Every read checks the remaining
// length first: nothing is allocated from a length the input claims.
type reader struct {
	what string // the object being decoded, for error messages
	b    []byte
	off  int
	err  error
}

func newReader(what string, b []byte) *reader { return &reader{what: what, b: b} }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(fmt.Errorf("%s: %s at byte %d: want %d bytes, have %d: %w", r.what, field, r.off, n, len(r.b)-r.off, ErrTruncated))
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u24(field string) uint32 {
	if v := r.take(3, field); v != nil {
		return uint32(v[0])<<16 | uint32(v[1])<<8 | uint32(v[2])
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if v := r.take(8, field); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) time32(field string) time.Time { return time.Unix(int64(r.u32(field)), 0).UTC() }

func (r *reader) copyInto(dst []byte, field string) {
	if v := r.take(len(dst), field); v != nil {
		copy(dst, v)
	}
}

// str reads a string with a 1-byte length, at most limit bytes of valid
// UTF-8 without control characters.
func (r *reader) str(field string, limit int) string {
	n := int(r.u8(field + " length"))
	if r.err == nil && n > limit {
		r.fail(fmt.Errorf("%s: %s of %d bytes, limit %d: %w", r.what, field, n, limit, ErrTooLarge))
	}
	v := r.take(n, field)
	if r.err != nil {
		return ""
	}
	if err := checkText(v); err != nil {
		r.fail(fmt.Errorf("%s: %s: %w", r.what, field, err))
		return ""
	}
	return string(v)
}

// str16 is str with a 2-byte length, for longer texts.
func (r *reader) str16(field string, limit int) string {
	n := int(r.u16(field + " length"))
	if r.err == nil && n > limit {
		r.fail(fmt.Errorf("%s: %s of %d bytes, limit %d: %w", r.what, field, n, limit, ErrTooLarge))
	}
	v := r.take(n, field)
	if r.err != nil {
		return ""
	}
	if err := checkText(v); err != nil {
		r.fail(fmt.Errorf("%s: %s: %w", r.what, field, err))
		return ""
	}
	return string(v)
}

func (r *reader) remaining() int { return len(r.b) - r.off }

// done returns the first error, or ErrTrailing when bytes are left.
func (r *reader) done() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%s: %d bytes after the end: %w", r.what, len(r.b)-r.off, ErrTrailing)
	}
	return nil
}

// checkText accepts valid UTF-8 without control characters other than
// newline and tab, so nothing a peer writes can forge lines in a terminal
// or a log.
func checkText(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8: %w", ErrMalformed)
	}
	for _, c := range string(b) {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return fmt.Errorf("control character %U: %w", c, ErrMalformed)
		}
	}
	return nil
}

// checkString checks a string field before encoding it.
func checkString(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s of %d bytes, limit %d: %w", field, len(s), limit, ErrTooLarge)
	}
	if err := checkText([]byte(s)); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

func appendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendU24(b []byte, v uint32) []byte { return append(b, byte(v>>16), byte(v>>8), byte(v)) }

// unix32 converts t to uint32 seconds, failing outside 1970..2106.
func unix32(field string, t time.Time) (uint32, error) {
	s := t.Unix()
	if s < 0 || s > 1<<32-1 {
		return 0, fmt.Errorf("%s %v: not representable in 32-bit seconds: %w", field, t, ErrMalformed)
	}
	return uint32(s), nil
}
