package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/mem"
)

// memTransport hands the daemon in-memory links.
type memTransport struct {
	ch   chan contract.Link
	once sync.Once
}

func newMemTransport() *memTransport { return &memTransport{ch: make(chan contract.Link, 4)} }

func (m *memTransport) Links() <-chan contract.Link { return m.ch }
func (m *memTransport) Close() error {
	m.once.Do(func() { close(m.ch) })
	return nil
}

// startWith opens a node, adds transports and runs it.
func startWith(tb testing.TB, cfg Config, ts ...contract.Transport) (*Node, func()) {
	tb.Helper()
	n, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	n.transports = append(n.transports, ts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return n, func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// exchange sends a message from a to b and waits for its delivery and
// receipt.
func exchange(t *testing.T, ctx context.Context, a, b *Node, text string) {
	t.Helper()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	res, err := a.Send(ctx, rpcapi.SendParams{To: b.id.Address().String(), Text: text})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev := waitKind(t, ctx, evB, rpcapi.EventMessage)
		if ev.Message.Text == text {
			break
		}
	}
	for {
		if ev := waitKind(t, ctx, evA, rpcapi.EventDelivered); ev.ID == res.ID {
			return
		}
	}
}

// TestTCPLinks: two nodes linked only by a plain TCP link exchange a
// message, and node.links shows the link on both.
func TestTCPLinks(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgA := testConfig(t)
	cfgA.TCP.Listen = "127.0.0.1:0"
	a, stopA := startNode(t, cfgA)
	defer stopA()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	cfgB := testConfig(t)
	cfgB.TCP.Peers = []string{a.id.Address().String() + "@" + a.tcpAddr()}
	b, stopB := startNode(t, cfgB)
	defer stopB()
	if ev := waitKind(t, ctx, evA, rpcapi.EventPeerUp); ev.Peer.Kind != "tcp" || ev.Peer.Address != b.id.Address().String() {
		t.Fatalf("peer up %+v", ev.Peer)
	}
	exchange(t, ctx, a, b, "over tcp")
	exchange(t, ctx, b, a, "and back")
	for _, n := range []*Node{a, b} {
		links, err := n.Links(ctx)
		if err != nil || len(links) != 1 {
			t.Fatalf("links %+v, %v", links, err)
		}
		l := links[0]
		if l.Kind != "tcp" || l.State != "up" || l.FramesIn == 0 || l.FramesOut == 0 || l.Peer == "" || l.MTU != 64<<10 {
			t.Errorf("link %+v", l)
		}
	}
	info, _ := a.Info(ctx)
	if info.Peers != 1 || !strings.HasPrefix(info.TCPListen, "127.0.0.1:") {
		t.Errorf("node.info peers %d, tcp_listen %q", info.Peers, info.TCPListen)
	}
}

// TestWindowedLinkTxDone: a shared, windowed link (as a LoRa modem is)
// carries a message both ways through the contract; the daemon hands the
// engine TxDone, without which the window of 1 would stop the link after
// one frame.
func TestWindowedLinkTxDone(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ta, tb := newMemTransport(), newMemTransport()
	a, stopA := startWith(t, testConfig(t), ta)
	defer stopA()
	b, stopB := startWith(t, testConfig(t), tb)
	defer stopB()
	radio := mem.Config{Info: contract.Info{Kind: contract.KindLoRa, Name: "radio", Shared: true, MTU: 255, Window: 1, Bitrate: 1_000_000}, Queue: 4}
	la, lb := mem.Pipe(radio, radio, nil, nil)
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	ta.ch <- la
	tb.ch <- lb
	waitKind(t, ctx, evA, rpcapi.EventPeerUp)
	waitKind(t, ctx, evB, rpcapi.EventPeerUp)
	exchange(t, ctx, a, b, "over the air")
	exchange(t, ctx, b, a, "and back")
	links, _ := a.Links(ctx)
	if len(links) != 1 || links[0].Kind != "lora" || links[0].Peer != "" || links[0].Direction != "" || links[0].FramesOut < 8 {
		t.Errorf("links %+v", links)
	}
	// The link going down reaches the engine and the API.
	la.Close(errors.New("test: unplugged"))
	waitKind(t, ctx, evA, rpcapi.EventPeerDown)
	if ls, _ := a.Links(ctx); len(ls) != 0 {
		t.Errorf("links after the link went down: %+v", ls)
	}
}
