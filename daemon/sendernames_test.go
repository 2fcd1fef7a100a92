package daemon

import (
	"testing"

	"meshd.dev/meshd/protocol"
)

// TestSenderNamesKept: the loop keeps the last inbox message's sender
// names for the next message event. Senders that differ in their address
// only, or in their identity only (the KEM key's hash, the signing key),
// must each get their own names, in any order.
func TestSenderNamesKept(t *testing.T) {
	n := &Node{}
	var a, b protocol.CompactIdentity
	a.SigningKey[0], b.SigningKey[0] = 1, 1
	b.KEMKeyHash[31] = 1
	c := a
	c.SigningKey[31] = 2
	type sender struct {
		from protocol.Address
		id   protocol.CompactIdentity
	}
	senders := []sender{
		{protocol.Address{1}, a}, {protocol.Address{1}, b}, {protocol.Address{2}, b},
		{protocol.Address{2}, c}, {protocol.Address{1}, a}, {protocol.Address{1}, a}, {protocol.Address{2}, a},
	}
	var last senderNames
	for i, s := range senders {
		from, fp := last.names(n, s.from, s.id)
		if from != s.from.String() || fp != s.id.Fingerprint() {
			t.Fatalf("message %d from %v: named %s, %s; want %s, %s", i, s, from, fp, s.from, s.id.Fingerprint())
		}
	}
}
