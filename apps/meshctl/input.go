package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTTL is the longest message lifetime the protocol allows
// (protocol.MaxLifetime; a test keeps the two equal without meshctl
// linking the protocol package).
const maxTTL = 30 * 24 * time.Hour

// maxInboxLimit is msg.inbox's largest page.
const maxInboxLimit = 1000

// checkTTL refuses a --ttl the daemon would refuse, in the unit the user
// typed (the API counts seconds, which a user of --ttl 1000000h never saw).
func checkTTL(ttl time.Duration) error {
	switch {
	case ttl < 0 || (ttl > 0 && ttl < time.Second):
		return usageError{fmt.Errorf("--ttl %v: want at least 1s", ttl)}
	case ttl > maxTTL:
		return usageError{fmt.Errorf("--ttl %v: at most %v (30 days)", ttl, maxTTL)}
	}
	return nil
}

// stdinMessage turns what was read from standard input into a message:
// UTF-8 text as text, without the one trailing newline that echo or a
// heredoc adds; anything else as binary, unchanged.
func stdinMessage(b []byte) (text string, payload []byte) {
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return "", b
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// stamp is how meshctl shows a time: local, to the second, with its zone.
func stamp(t time.Time) string { return t.Local().Format(time.RFC3339) }

// unknownSeqs reports inbox sequence numbers that were not there.
func unknownSeqs(seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	s := make([]string, len(seqs))
	for i, v := range seqs {
		s[i] = fmt.Sprintf("#%d", v)
	}
	return fmt.Errorf("not in the inbox: %s (already acknowledged, or never received; see meshctl inbox)", strings.Join(s, ", "))
}
