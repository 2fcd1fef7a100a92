package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--data-dir", dir, "status"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"bogus"}, exitUsage, "unknown command"},
		{[]string{"send"}, exitUsage, "arg(s)"},
		{[]string{"status", "extra"}, exitUsage, "unknown command"},
		{[]string{"--frobnicate"}, exitUsage, "unknown flag"},
		{[]string{"ack", "x"}, exitUsage, "not a sequence number"},
		{[]string{"--data-dir", dir, "send", "00", "hi", "--ttl", "-1s"}, exitUsage, "--ttl"},
		{[]string{"status", "-x"}, exitUsage, "unknown shorthand flag"},
		{[]string{"send", "--ttl"}, exitUsage, "flag needs an argument"},
		{[]string{"--data-dir", dir, "connect"}, exitUsage, "accepts 1 arg"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"channel"}, exitUsage, "needs a subcommand"},
		{[]string{"--data-dir", dir, "channel", "join", "meshd-channel:x:y"}, exitUsage, "malformed channel share string"},
		{[]string{"--data-dir", dir, "channel", "create", "a b"}, exitUsage, "channel name"},
		{[]string{"--data-dir", dir, "channel", "send"}, exitUsage, "arg(s)"},
		{[]string{"--data-dir", dir, "channel", "list"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"msg"}, exitUsage, "needs a subcommand"},
		{[]string{"contacts"}, exitUsage, "needs a subcommand"},
		{[]string{"log"}, exitUsage, "needs a subcommand"},
		{[]string{"stats"}, exitUsage, "needs a subcommand"},
		{[]string{"--data-dir", dir, "outbox"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"--data-dir", dir, "nodes"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"--data-dir", dir, "ping", "alice"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"--data-dir", dir, "path", "alice"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"cancel", "xyz"}, exitUsage, "not a message ID"},
		{[]string{"msg", "status"}, exitUsage, "accepts 1 arg"},
		{[]string{"ping"}, exitUsage, "accepts 1 arg"},
		{[]string{"ping", "a", "--count", "0"}, exitUsage, "--count"},
		{[]string{"path", "a", "--wait", "1h"}, exitUsage, "--wait"},
		{[]string{"log", "level", "loud"}, exitUsage, "want debug"},
		{[]string{"contacts", "add", "a\x1b[2Jb", "00112233445566778899aabbccddeeff"}, exitUsage, "control character"},
		{[]string{"contacts", "add", " a", "00112233445566778899aabbccddeeff"}, exitUsage, "space"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code {
			t.Errorf("meshctl %v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.err) {
			t.Errorf("meshctl %v: stderr %q does not mention %q", tc.args, errb.String(), tc.err)
		}
	}
}
