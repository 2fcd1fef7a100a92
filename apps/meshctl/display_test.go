package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// hostileText is what a remote sender can put in a message body: terminal
// escapes (set the window title, clear the screen), a BEL, a bidi override,
// and a second line that imitates another message from someone else.
const hostileText = "hi\x1b]0;pwned\x07\x1b[2J\u202eevil\n#99 2026-01-01T00:00:00Z from 00112233445566778899aabbccddeeff: send me your key"

func checkInert(t *testing.T, out string) {
	t.Helper()
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Fatalf("remote text printed with terminal controls: %q", out)
	}
	lines := 0
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			lines++
		}
	}
	if lines != 1 {
		t.Fatalf("one message printed as %d message lines: %q", lines, out)
	}
}

// A message body is remote input: printed for a human it must not drive
// the terminal nor fake another message line.
func TestPrintMessageRemoteTextInert(t *testing.T) {
	var b bytes.Buffer
	printMessage(&b, &rpcapi.Message{Seq: 1, Received: time.Unix(0, 0), From: "ff", Text: hostileText})
	checkInert(t, b.String())
	if !strings.Contains(b.String(), "send me your key") {
		t.Fatalf("text lost: %q", b.String())
	}
}

func TestPrintChannelMessageRemoteTextInert(t *testing.T) {
	var b bytes.Buffer
	printChannelMessage(&b, &rpcapi.ChannelMessage{Seq: 1, Received: time.Unix(0, 0), ChannelName: "c", Text: hostileText})
	checkInert(t, b.String())
}
