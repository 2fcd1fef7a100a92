package rpcapi

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Contact names reach terminals (meshctl inbox, watch): a name must not
// smuggle escape sequences, bidirectional overrides or something that reads
// as an address.
func TestCheckContactNameRefuses(t *testing.T) {
	bad := []string{
		"", strings.Repeat("x", MaxContactName+1), "bad\xff", " alice", "alice\n", "al\x1b[31mice",
		"ali\u202ece", "00112233445566778899aabbccddeeff", "a\u0000b",
	}
	for _, name := range bad {
		if err := CheckContactName(name); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("CheckContactName(%q) = %v, want invalid params", name, err)
		}
	}
	for _, name := range []string{"alice", "Bäckerei Müller", "relay 2", "東京", strings.Repeat("x", MaxContactName)} {
		if err := CheckContactName(name); err != nil {
			t.Errorf("CheckContactName(%q) = %v", name, err)
		}
	}
}

func TestParseMessageID(t *testing.T) {
	for _, s := range []string{"", "xyz", "0011", "00112233445566778899aabbccddeeff00"} {
		if _, err := ParseMessageID(s); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("ParseMessageID(%q) = %v", s, err)
		}
	}
	if _, err := ParseMessageID("00112233445566778899AABBCCDDEEFF"); err != nil {
		t.Error(err)
	}
}

// FuzzCheckContactName: whatever a name holds, an accepted one is short,
// valid UTF-8 and free of control and format characters.
func FuzzCheckContactName(f *testing.F) {
	for _, s := range []string{"alice", "a\x1b[31m", "\u202e", "00112233445566778899aabbccddeeff", " x", "東京"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckContactName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxContactName || !utf8.ValidString(name) {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}
