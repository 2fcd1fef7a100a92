package p2p

import (
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// loopbackMulticast returns the loopback interface's name, or skips the
// test when it cannot carry multicast (as on many CI runners and
// containers: Linux's lo has no MULTICAST flag by default).
func loopbackMulticast(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Skipf("mDNS test skipped: listing interfaces: %v", err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback == 0 || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		if ifi.Flags&net.FlagMulticast == 0 {
			t.Skipf("mDNS test skipped: loopback interface %s has no MULTICAST flag (flags %v); "+
				"to run it on Linux: unshare -rn sh -c 'ip link set lo up multicast on && go test -run MDNS ./transports/p2p/'",
				ifi.Name, ifi.Flags)
		}
		return ifi.Name
	}
	t.Skip("mDNS test skipped: no loopback interface that is up")
	return ""
}

func TestMDNSDiscovery(t *testing.T) {
	lo := loopbackMulticast(t)
	ctx := testContext(t)
	mdns := func(c *Config) {
		c.MDNS = true
		c.MDNSInterfaces = []string{lo}
	}
	a := newTestHost(t, 30, mdns)
	b := newTestHost(t, 31, mdns)
	// No Connect: the hosts find each other and bring the link up.
	ua := waitEvent[LinkUp](t, ctx, a)
	ub := waitEvent[LinkUp](t, ctx, b)
	if ua.Peer != b.ID() || ub.Peer != a.ID() {
		t.Fatalf("LinkUp %s / %s", ua.Peer, ub.Peer)
	}
}

func TestMDNSConfigErrors(t *testing.T) {
	if _, err := multicastInterfaces([]string{"no-such-interface0"}); !errors.Is(err, ErrMDNS) {
		t.Errorf("unknown interface: %v", err)
	}
}

func TestMDNSText(t *testing.T) {
	id := testPeerID(t, testIdentity(t, 1))
	addrs := testAddrs(t,
		"/ip4/127.0.0.1/tcp/4001",
		"/ip4/192.0.2.1/tcp/4001/p2p/"+id.String()+"/p2p-circuit",
		"/dns4/example.com/tcp/443",
		"/ip6/::1/udp/4001/quic-v1",
	)
	// With a LAN address, loopback is not advertised.
	lan := append(slices.Clone(addrs), testAddrs(t, "/ip4/192.168.1.5/tcp/4001")...)
	if txt := mdnsText(lan, id); len(txt) != 1 || txt[0] != "dnsaddr=/ip4/192.168.1.5/tcp/4001/p2p/"+id.String() {
		t.Fatalf("mdnsText with a LAN address = %q", txt)
	}
	// Loopback only (tests): loopback is all there is to advertise.
	txt := mdnsText(addrs, id)
	want := []string{
		"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/" + id.String(),
		"dnsaddr=/ip6/::1/udp/4001/quic-v1/p2p/" + id.String(),
	}
	if len(txt) != len(want) || txt[0] != want[0] || txt[1] != want[1] {
		t.Fatalf("mdnsText = %q, want %q", txt, want)
	}
	ai, err := parseMDNSEntry(id.String(), append(txt, "other=1", "dnsaddr=garbage"))
	if err != nil || ai.ID != id || len(ai.Addrs) != 2 || !ai.Addrs[0].Equal(addrs[0]) {
		t.Fatalf("parseMDNSEntry = %v, %v", ai, err)
	}
	if p := mdnsPort([]ma.Multiaddr{addrs[3], addrs[0]}); p != 4001 {
		t.Fatalf("mdnsPort = %d", p)
	}
	if _, err := parseMDNSEntry(id.String(), []string{"dnsaddr=/ip4/1.2.3.4/tcp/1/p2p/" + testPeerID(t, testIdentity(t, 2)).String()}); !errors.Is(err, ErrMDNS) {
		t.Fatalf("entry with only another peer's address: %v", err)
	}
}

// noMulticastInterface skips the test unless no interface that is up can
// carry multicast (a network namespace with only lo, up, without
// MULTICAST: unshare -rn sh -c 'ip link set lo up && ...').
func noMulticastInterface(t *testing.T) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Skipf("listing interfaces: %v", err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 {
			t.Skipf("mDNS no-interface test skipped: %s is up with multicast; to run it on Linux: "+
				"unshare -rn sh -c 'ip link set lo up && go test -run MDNSNoMulticast ./transports/p2p/'", ifi.Name)
		}
	}
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	written chan struct{} // signalled after each write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.written <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With mDNS on and no multicast interface the host starts (today's fails
// with "No supported interface"), warns, and links work.
func TestMDNSNoMulticastInterface(t *testing.T) {
	noMulticastInterface(t)
	ctx := testContext(t)
	logs := lockedBuffer{written: make(chan struct{}, 1)}
	a := newTestHost(t, 50, func(c *Config) {
		c.MDNS = true
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	b := newTestHost(t, 51, nil)
	connectPair(t, ctx, a, b)
	for !strings.Contains(logs.String(), "mDNS LAN discovery unavailable") {
		select {
		case <-ctx.Done():
			t.Fatalf("no warning about mDNS; logs:\n%s", logs.String())
		case <-logs.written:
		}
	}
	for line := range strings.Lines(logs.String()) {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}
