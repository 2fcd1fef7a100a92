package p2p

import (
	"bytes"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// TestRelayModeCircuit: c listens nowhere (it can dial out but nobody can
// dial it, like a host behind NAT), so a cannot reach it directly; c
// reserves a slot on r, a meshd host in relay mode, and a connects to c
// through r's circuit relay and exchanges data over it. More than the
// relay's data cap per connection (RelayLimits.Data, set to 128 KiB each
// way here) does not get through. (Loopback only: a host without listen addresses stands
// for one behind NAT, no network namespaces needed.)
func TestRelayModeCircuit(t *testing.T) {
	ctx := testContext(t)
	r := newTestHost(t, 71, func(c *Config) { c.Relay, c.RelayLimits.Data = true, 128<<10 })
	waitProtocol(t, ctx, r, "/libp2p/circuit/relay/0.2.0/hop")
	rAI := peer.AddrInfo{ID: r.ID(), Addrs: r.Libp2p().Addrs()}

	c, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.EnableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Connect(ctx, peer.AddrInfo{ID: c.ID()}); err == nil {
		t.Fatal("a dialled c directly; c should be unreachable")
	}
	if err := c.Connect(ctx, rAI); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, c, rAI); err != nil {
		t.Fatalf("reservation on the relay: %v", err)
	}
	c.SetStreamHandler("/meshd-test/echo", func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	circuit, err := ma.NewMultiaddr("/p2p/" + r.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	var caddrs []ma.Multiaddr
	for _, ra := range rAI.Addrs {
		caddrs = append(caddrs, ra.Encapsulate(circuit))
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: c.ID(), Addrs: caddrs}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	for _, conn := range a.Network().ConnsToPeer(c.ID()) {
		if !conn.Stat().Limited {
			t.Fatalf("a has a direct connection to c: %s", conn.RemoteMultiaddr())
		}
	}
	echo := func(n int) error {
		s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), c.ID(), "/meshd-test/echo")
		if err != nil {
			return err
		}
		defer s.Close()
		msg := bytes.Repeat([]byte{0x5a}, n)
		go func() {
			s.Write(msg)
			s.CloseWrite()
		}()
		got, err := io.ReadAll(s)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return io.ErrUnexpectedEOF
		}
		return nil
	}
	if err := echo(100 << 10); err != nil {
		t.Fatalf("100 KiB through the relay: %v", err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: c.ID(), Addrs: caddrs}); err != nil {
		t.Fatal(err)
	}
	if err := echo(512 << 10); err == nil {
		t.Fatal("512 KiB went through a relayed connection capped at 128 KiB each way")
	}
}
