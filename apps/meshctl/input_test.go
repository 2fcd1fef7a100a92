package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

func TestMaxTTLIsTheProtocols(t *testing.T) {
	if maxTTL != protocol.MaxLifetime {
		t.Errorf("meshctl's maxTTL %v, protocol.MaxLifetime %v", maxTTL, protocol.MaxLifetime)
	}
}

func TestCheckTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want string
	}{
		{0, ""}, {time.Second, ""}, {720 * time.Hour, ""},
		{500 * time.Millisecond, "--ttl 500ms: want at least 1s"},
		{-time.Second, "--ttl -1s: want at least 1s"},
		{1000000 * time.Hour, "--ttl 1000000h0m0s: at most 720h0m0s (30 days)"},
	} {
		err := checkTTL(tc.ttl)
		var ue usageError
		if (tc.want == "") != (err == nil) || (err != nil && (err.Error() != tc.want || !errors.As(err, &ue))) {
			t.Errorf("checkTTL(%v) = %v, want %q (a usage error)", tc.ttl, err, tc.want)
		}
	}
}

func TestStdinMessage(t *testing.T) {
	for _, tc := range []struct {
		in      string
		text    string
		payload []byte
	}{
		{"hello\n", "hello", nil},
		{"hello\r\n", "hello", nil},
		{"two lines\n\n", "two lines\n", nil},
		{"no newline", "no newline", nil},
		{"\n", "", nil},
		{"\xff\xfe\n", "", []byte("\xff\xfe\n")},
		{"nul\x00\n", "", []byte("nul\x00\n")},
	} {
		text, payload := stdinMessage([]byte(tc.in))
		if text != tc.text || !bytes.Equal(payload, tc.payload) {
			t.Errorf("stdinMessage(%q) = %q, %q; want %q, %q", tc.in, text, payload, tc.text, tc.payload)
		}
	}
}

func TestUserError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cannot reach meshd: rpcapi: connecting to meshd at x", "cannot reach meshd: connecting to meshd at x"},
		{"plain", "plain"},
	} {
		if got := userError(errors.New(tc.in)).Error(); got != tc.want {
			t.Errorf("userError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// What the daemon answers: the message, without code or class.
	wire := &rpcapi.Error{Code: rpcapi.CodeInvalidParams, Message: "invalid params: limit 5000 is above the maximum 1000"}
	if got := userError(fmt.Errorf("wrapped: %w", wire)).Error(); got != "limit 5000 is above the maximum 1000" {
		t.Errorf("userError(%v) = %q", wire, got)
	}
}

// TestEveryCommandHasExamples: every command's help shows how to use it, and
// the root's help has the exit codes.
func TestEveryCommandHasExamples(t *testing.T) {
	root := newRoot(&options{})
	if !strings.Contains(root.Long, "Exit codes:") {
		t.Error("meshctl --help does not document the exit codes")
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		// cobra's completion scripts explain their use in their own help.
		generated := c.Name() == "help" || c.HasParent() && c.Parent().Name() == "completion"
		if !generated && !c.Hidden && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples in its help (add them to the command or to examples.go)", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
