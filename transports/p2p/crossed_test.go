package p2p

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// crossingProxy stands in for each host's address as the other dials it.
// The first connection it gets from each side is spliced to the other's:
// both hosts then run the security handshake as its initiator on one byte
// stream, which is what a TCP simultaneous open of two dials between the
// same ports (libp2p dials from its listen port) makes. Later connections
// are passed on to the real host.
type crossingProxy struct {
	mu      sync.Mutex
	waiting net.Conn // the first side's first connection
	crossed int
}

func (p *crossingProxy) listen(t *testing.T, to string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	target, err := ma.NewMultiaddr(to)
	if err != nil {
		t.Fatal(err)
	}
	ip, _ := target.ValueForProtocol(ma.P_IP4)
	port, _ := target.ValueForProtocol(ma.P_TCP)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			switch {
			case p.crossed == 0 && p.waiting == nil:
				p.waiting = c
				p.mu.Unlock()
				continue
			case p.crossed == 0:
				p.crossed++
				w := p.waiting
				p.mu.Unlock()
				go splice(c, w)
				continue
			}
			p.mu.Unlock()
			d, err := net.Dial("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				c.Close()
				continue
			}
			go splice(c, d)
		}
	}()
	a := l.Addr().(*net.TCPAddr)
	return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(a.Port)
}

func splice(a, b net.Conn) {
	go func() { _, _ = io.Copy(a, b); a.Close(); b.Close() }()
	_, _ = io.Copy(b, a)
	a.Close()
	b.Close()
}

// TestCrossedDials: two hosts that dial each other at the same moment from
// their listen ports may get one TCP connection between them (a TCP
// simultaneous open), on which both run the security handshake as its
// initiator and both fail ("message is too short"): neither is connected.
// Connect must still succeed on both sides (TestSimultaneousConnect failed
// this way about once in 90 runs).
func TestCrossedDials(t *testing.T) {
	ctx := testContext(t)
	a := newTestHost(t, 56, nil)
	b := newTestHost(t, 57, nil)
	p := &crossingProxy{}
	toB := p.listen(t, b.Addrs()[0]) + "/p2p/" + b.ID().String()
	toA := p.listen(t, a.Addrs()[0]) + "/p2p/" + a.ID().String()
	errs := make(chan error, 2)
	go func() { _, err := a.Connect(ctx, toB); errs <- err }()
	go func() { _, err := b.Connect(ctx, toA); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	crossed := p.crossed
	p.mu.Unlock()
	if crossed != 1 {
		t.Fatalf("the proxy crossed %d dials, want 1", crossed)
	}
	waitEvent[LinkUp](t, ctx, a)
	waitEvent[LinkUp](t, ctx, b)
}
