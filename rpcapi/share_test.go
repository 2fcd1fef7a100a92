package rpcapi

import (
	"context"
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

// TestChannelMethodErrors: bad channel requests get clear errors with the
// documented codes, and the client maps them to the sentinels.
func TestChannelMethodErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, err := Dial(ctx, e.srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ChannelCreate(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
		text string
	}{
		{"create without a name", func() error { _, err := c.ChannelCreate(ctx, ""); return err }, ErrInvalidParams, "channel name"},
		{"create with a colon", func() error { _, err := c.ChannelCreate(ctx, "a:b"); return err }, ErrInvalidParams, "channel name"},
		{"join a malformed share", func() error { _, err := c.ChannelJoin(ctx, "meshd-channel:ops:xyz"); return err }, ErrInvalidParams, "share"},
		{"share unknown", func() error { _, err := c.ChannelShare(ctx, "nope"); return err }, ErrNotJoined, "nope"},
		{"leave without a channel", func() error { _, err := c.ChannelLeave(ctx, ""); return err }, ErrInvalidParams, "channel is required"},
		{"publish not joined", func() error {
			_, err := c.ChannelPublish(ctx, ChannelPublishParams{Channel: "nope", Text: "x"})
			return err
		}, ErrNotJoined, "nope"},
		{"publish both", func() error {
			_, err := c.ChannelPublish(ctx, ChannelPublishParams{Channel: "ops", Text: "x", Payload: []byte{1}})
			return err
		}, ErrInvalidParams, "not both"},
		{"publish empty", func() error { _, err := c.ChannelPublish(ctx, ChannelPublishParams{Channel: "ops"}); return err }, ErrInvalidParams, "empty"},
		{"publish oversized", func() error {
			_, err := c.ChannelPublish(ctx, ChannelPublishParams{Channel: "ops", Payload: make([]byte, MaxChannelBody+1)})
			return err
		}, ErrInvalidParams, "larger than"},
		{"publish signed oversized", func() error {
			_, err := c.ChannelPublish(ctx, ChannelPublishParams{Channel: "ops", Signed: true, Payload: make([]byte, MaxChannelBody-100)})
			return err
		}, ErrInvalidParams, "larger than"},
		{"history limit", func() error {
			_, err := c.ChannelHistory(ctx, ChannelHistoryParams{Channel: "ops", Limit: MaxHistoryLimit + 1})
			return err
		}, ErrInvalidParams, "limit"},
	} {
		err := tc.call()
		var ae *Error
		if !errors.Is(err, tc.want) || !errors.As(err, &ae) || !strings.Contains(ae.Message, tc.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.want, tc.text)
		}
	}
}
