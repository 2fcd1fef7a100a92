package rpcapi

import (
	"errors"
	"strings"
	"testing"

	"meshd.dev/meshd/protocol"
)

func TestChannelShare(t *testing.T) {
	var key protocol.ChannelKey
	for i := range key {
		key[i] = byte(i * 7)
	}
	s := FormatChannelShare("ops-2.a_b", key)
	name, got, err := ParseChannelShare(" " + s + "\n")
	if err != nil || name != "ops-2.a_b" || got != key {
		t.Fatalf("round trip of %q: %q %x %v", s, name, got, err)
	}
	enc := s[strings.LastIndexByte(s, ':')+1:]
	for _, bad := range []string{
		"",
		"meshd-channel:",
		"meshd-channel:ops",
		"meshd-channel::" + enc,
		"meshd-chan:ops:" + enc,
		"MESHD-CHANNEL:ops:" + enc,
		"meshd-channel:o ps:" + enc,
		"meshd-channel:ops:x:" + enc,
		"meshd-channel:" + strings.Repeat("a", 65) + ":" + enc,
		"meshd-channel:ops:" + enc + "=",
		"meshd-channel:ops:" + enc[:42],
		"meshd-channel:ops:" + enc[:42] + "+",
		"meshd-channel:ops:" + enc[:42] + "B", // stray bits in the last character
		"meshd-channel:ops:" + enc + " x",
	} {
		_, _, err := ParseChannelShare(bad)
		if !errors.Is(err, ErrBadShare) {
			t.Errorf("ParseChannelShare(%q) = %v, want ErrBadShare", bad, err)
		} else if strings.Contains(err.Error(), enc[:20]) {
			t.Errorf("error %q repeats the key", err)
		}
	}
}

func FuzzParseChannelShare(f *testing.F) {
	f.Add(FormatChannelShare("ops", protocol.ChannelKey{1, 2, 3}))
	f.Add("meshd-channel:a:")
	f.Add("meshd-channel:ops:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Fuzz(func(t *testing.T, s string) {
		name, key, err := ParseChannelShare(s)
		if err != nil {
			if !errors.Is(err, ErrBadShare) {
				t.Fatalf("error %v does not wrap ErrBadShare", err)
			}
			return
		}
		// Whatever parses is canonical: formatting gives the trimmed input.
		if again := FormatChannelShare(name, key); again != strings.TrimSpace(s) {
			t.Fatalf("%q parsed, formats as %q", s, again)
		}
	})
}
