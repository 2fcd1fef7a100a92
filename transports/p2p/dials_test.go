package p2p

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// silentListener accepts TCP connections and never answers: a dial to
// it stays in its security handshake. accepted gets each connection.
func silentListener(t *testing.T) (ma.Multiaddr, <-chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	a, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	return a, accepted
}

// TestCloseWaitsForDials: a dial of the host's in flight when Close is
// called has returned when Close returns. libp2p's swarm must not see a
// dial of ours while it drops its transports: a force-direct dial then
// panics in go-libp2p (Swarm.nonProxyAddr on a nil transport) and
// crashes meshd at stop.
func TestCloseWaitsForDials(t *testing.T) {
	a := newTestHost(t, 1, nil)
	b := newTestHost(t, 2, nil)
	addr, accepted := silentListener(t)
	res := make(chan error, 1)
	go func() {
		res <- a.ConnectInfo(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{addr}})
	}()
	<-accepted // the dial is in flight, in its handshake
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("ConnectInfo to a silent listener succeeded")
		}
	default:
		t.Fatal("ConnectInfo still dialing when Close returned")
	}
	if err := a.ConnectInfo(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{addr}}); err != ErrClosed {
		t.Fatalf("ConnectInfo after Close: %v, want ErrClosed", err)
	}
}
