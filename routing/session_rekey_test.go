package routing_test

import (
	"strings"
	"testing"
)

// TestSessionRekeysInSession: a session in use for more than a key
// phase's lifetime (protocol.SessionRekeyAge, 24 h) is rekeyed inside the
// session (an X25519 exchange in two small control frames), not replaced
// by a new handshake, and every message is delivered exactly once across
// the rekey. Before in-session rekeys were wired, the engine replaced the
// session: a second init.
func TestSessionRekeysInSession(t *testing.T) {
	s := newScenario(t)
	do := func(line string) string {
		t.Helper()
		out, err := s.do(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return out
	}
	do("node a b")
	do("link a b tcp latency=10ms")
	do("run 1s")
	for range 55 { // every 30 min (IP sessions idle out after 1 h): 27 h
		do(`send a b "tick"`)
		do("run 30m quiet")
	}
	if got := do("messages summary"); !strings.Contains(got, "55 sent: 55 received once, 0 more than once, 0 not received; senders saw 55 delivered") {
		t.Fatalf("messages: %s", got)
	}
	got := do("counters a b SessionInitsOut SessionRekeys")
	for _, want := range []string{"a: SessionInitsOut=1 SessionRekeys=1", "b: SessionInitsOut=0 SessionRekeys=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("counters:\n%s\nwant a line %q", got, want)
		}
	}
}
