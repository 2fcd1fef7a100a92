package p2p

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

func mas(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// Attack: a linked peer claims, in identify, listen addresses that are
// not its own (a cloud metadata service, an internal SSH port, a name).
// The host must not remember them for redialling (nor hand them to the
// daemon to persist): only what the connection itself shows is plausible.
func TestRememberOnlyPlausibleAddrs(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 51, nil)
	b := newTestHost(t, 52, nil)
	connectPair(t, ctx, a, b)
	poison := mas(t,
		"/ip4/169.254.169.254/tcp/80",
		"/ip4/10.0.0.1/tcp/22",
		"/dns4/internal.example/tcp/443",
		"/ip6/fe80::1/tcp/22",
	)
	// As identify does with the peer's claimed listen addresses.
	a.host.Peerstore().AddAddrs(b.ID(), poison, peerstore.ConnectedAddrTTL)
	got := a.peerAddrs(b.ID())
	if len(got) == 0 {
		t.Fatal("no address remembered for a linked peer")
	}
	for _, g := range got {
		ip, err := g.ValueForProtocol(ma.P_IP4)
		// Claimed ports may survive, on the peer's own IP only.
		if err != nil || ip != "127.0.0.1" {
			t.Errorf("remembered %s: not the IP the peer was seen on", g)
		}
	}
}

func TestPlausibleAddrsRule(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed string
		claimed  []string
		want     []string
	}{
		{"public peer claims other hosts", "/ip4/203.0.113.7/tcp/4001",
			[]string{"/ip4/169.254.169.254/tcp/80", "/ip4/10.0.0.1/tcp/22", "/ip4/203.0.113.7/tcp/4001"},
			// The foreign IPs become the observed IP with the claimed port:
			// at worst the node dials the peer's own host.
			[]string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/tcp/80", "/ip4/203.0.113.7/tcp/22"}},
		{"NAT: listen port differs from observed port", "/ip4/198.51.100.9/tcp/51234",
			[]string{"/ip4/192.168.1.5/tcp/7721", "/ip4/192.168.1.5/udp/7721/quic-v1"},
			[]string{"/ip4/198.51.100.9/tcp/51234", "/ip4/198.51.100.9/tcp/7721", "/ip4/198.51.100.9/udp/7721/quic-v1"}},
		{"LAN mesh keeps private addresses seen", "/ip4/192.168.1.5/tcp/40000",
			[]string{"/ip4/192.168.1.5/tcp/7721"},
			[]string{"/ip4/192.168.1.5/tcp/40000", "/ip4/192.168.1.5/tcp/7721"}},
		{"loopback connection keeps loopback claims", "/ip4/127.0.0.1/tcp/40000",
			[]string{"/ip6/::1/tcp/7721", "/ip4/127.0.0.1/tcp/7721"},
			[]string{"/ip4/127.0.0.1/tcp/40000", "/ip6/::1/tcp/7721", "/ip4/127.0.0.1/tcp/7721"}},
		{"IPv6", "/ip6/2001:db8::5/tcp/40000",
			[]string{"/ip6/2001:db8::5/tcp/7721", "/ip6/2001:db8::bad/tcp/22", "/ip4/10.0.0.1/tcp/7721"},
			[]string{"/ip6/2001:db8::5/tcp/40000", "/ip6/2001:db8::5/tcp/7721", "/ip6/2001:db8::5/tcp/22"}},
		{"names and circuits dropped", "/ip4/203.0.113.7/tcp/4001",
			[]string{"/dns4/evil.example/tcp/7721", "/ip4/203.0.113.8/tcp/4001/p2p/12D3KooWLKpCGNJJWNjhsPgbnGjJgTDr2LVdHpxxzYP6bXHzqNpU/p2p-circuit"},
			[]string{"/ip4/203.0.113.7/tcp/4001"}},
		{"observed over a relay: nothing plausible", "/ip4/203.0.113.8/tcp/4001/p2p/12D3KooWLKpCGNJJWNjhsPgbnGjJgTDr2LVdHpxxzYP6bXHzqNpU/p2p-circuit",
			[]string{"/ip4/10.0.0.1/tcp/22"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strs(plausibleAddrs(ma.StringCast(tc.observed), mas(t, tc.claimed...)))
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
