package fapp

import "fmt"

// Sprache is a language a therapist offers therapy in, as a lower-case ISO
// 639-1 code ("de", "tr", "ar"); 2 bytes on the wire.
type Sprache [2]byte

// ParseSprache parses a 2-letter ISO 639-1 code, in any case.
func ParseSprache(s string) (Sprache, error) {
	if len(s) != 2 {
		return Sprache{}, fmt.Errorf("Sprache %q: want a 2-letter ISO 639-1 code: %w", s, ErrMalformed)
	}
	l := Sprache{lower(s[0]), lower(s[1])}
	if !l.Valid() {
		return Sprache{}, fmt.Errorf("Sprache %q: want a 2-letter ISO 639-1 code: %w", s, ErrMalformed)
	}
	return l, nil
}

// Valid reports whether l is two lower-case ASCII letters.
func (l Sprache) Valid() bool {
	return l[0] >= 'a' && l[0] <= 'z' && l[1] >= 'a' && l[1] <= 'z'
}

// String returns the code, e.g. "de".
func (l Sprache) String() string { return string(l[:]) }

// MarshalText implements encoding.TextMarshaler.
func (l Sprache) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Sprache) UnmarshalText(b []byte) error {
	v, err := ParseSprache(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
