package daemon

import (
	"errors"
	"slices"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// TestChooseMailboxes: chosen relays stay (also while away), candidates
// fill up to the limit in their order, none twice.
func TestChooseMailboxes(t *testing.T) {
	a, b, c := protocol.Address{1}, protocol.Address{2}, protocol.Address{3}
	for _, tc := range []struct {
		chosen, cand, want []protocol.Address
	}{
		{nil, nil, nil},
		{nil, []protocol.Address{b, a, c}, []protocol.Address{b, a}},
		{[]protocol.Address{c}, []protocol.Address{a, c}, []protocol.Address{c, a}},
		{[]protocol.Address{c, b}, []protocol.Address{a}, []protocol.Address{c, b}},
	} {
		if got := chooseMailboxes(tc.chosen, tc.cand, 2); !slices.Equal(got, tc.want) {
			t.Errorf("chooseMailboxes(%v, %v) = %v, want %v", tc.chosen, tc.cand, got, tc.want)
		}
	}
}

// TestMailboxConfigValidate: bad relay addresses, too many relays, circuit
// relays without a peer ID and a zero interval are refused by name.
func TestMailboxConfigValidate(t *testing.T) {
	ok := "37e025edef36942b9c324112c352dad0"
	for _, m := range []MailboxConfig{
		{Relays: []string{"nothex"}, CollectInterval: Duration(time.Second)},
		{Relays: []string{ok, ok, ok, ok, ok}, CollectInterval: Duration(time.Second)},
		{CircuitRelays: []string{"/ip4/1.2.3.4/tcp/1"}, CollectInterval: Duration(time.Second)},
		{CircuitRelays: []string{"junk"}, CollectInterval: Duration(time.Second)},
		{},
	} {
		c := DefaultConfig()
		c.Mailbox = m
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", m, err)
		}
	}
	c := DefaultConfig()
	c.Mailbox.Relays = []string{ok}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestMailboxRelaysLeaveOutSelf: a relay whose configuration shares the
// list of relays, itself included, does not count itself among its
// mailbox relays (its collector dialled itself every interval).
func TestMailboxRelaysLeaveOutSelf(t *testing.T) {
	self, other := "37e025edef36942b9c324112c352dad0", "47e025edef36942b9c324112c352dad0"
	m := MailboxConfig{Relays: []string{self, other}}
	a, _ := protocol.ParseAddress(self)
	b, _ := protocol.ParseAddress(other)
	if got := m.addrs(a); !slices.Equal(got, []protocol.Address{b}) {
		t.Fatalf("relays of %s: %v, want [%s]", a, got, b)
	}
}
