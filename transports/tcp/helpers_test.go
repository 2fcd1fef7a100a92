package tcp

import (
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/link"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newIdentity(t testing.TB) *protocol.Identity {
	t.Helper()
	id, err := protocol.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newTransport starts a transport with cfg (Identity defaulted) and
// closes it when the test ends.
func newTransport(t testing.TB, cfg Config) *Transport {
	t.Helper()
	if cfg.Identity == nil {
		cfg.Identity = newIdentity(t)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func nextLink(t testing.TB, ctx context.Context, tr *Transport) link.Link {
	t.Helper()
	select {
	case l := <-tr.Links():
		return l
	case <-ctx.Done():
		t.Fatal("no link came up")
		return nil
	}
}

// linkedPair returns the two ends of a TCP link between two transports.
func linkedPair(t testing.TB, cfgA, cfgB Config) (a, b link.Link, ta, tb *Transport) {
	t.Helper()
	ctx := testCtx(t)
	cfgA.Listen = "127.0.0.1:0"
	ta = newTransport(t, cfgA)
	cfgB.Peers = []Peer{{Addr: ta.Addr().String()}}
	tb = newTransport(t, cfgB)
	return nextLink(t, ctx, ta), nextLink(t, ctx, tb), ta, tb
}

// connPair returns both ends of a loopback TCP connection.
func connPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// handshakeResult is one side's handshake outcome.
type handshakeResult struct {
	s   *session
	err error
}

func goHandshake(c net.Conn, id *protocol.Identity, initiator bool, want protocol.Address) <-chan handshakeResult {
	ch := make(chan handshakeResult, 1)
	go func() {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s, err := handshake(c, id, initiator, want, rand.Reader)
		ch <- handshakeResult{s, err}
	}()
	return ch
}
