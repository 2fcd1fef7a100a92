package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// tcpPair starts two nodes linked only by a plain TCP link (B dials A)
// and returns once A has the link up.
func tcpPair(t *testing.T, ctx context.Context) (a, b *Node, stop func()) {
	t.Helper()
	cfgA := testConfig(t)
	cfgA.TCP.Listen = "127.0.0.1:0"
	a, stopA := startNode(t, cfgA)
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	cfgB := testConfig(t)
	cfgB.TCP.Peers = []string{a.id.Address().String() + "@" + a.tcpAddr()}
	b, stopB := startNode(t, cfgB)
	if ev := waitKind(t, ctx, evA, rpcapi.EventPeerUp); ev.Peer.Kind != "tcp" || ev.Peer.Address != b.id.Address().String() {
		t.Fatalf("peer up %+v", ev.Peer)
	}
	return a, b, func() { stopB(); stopA() }
}

// TestTCPLinks: two nodes linked only by a plain TCP link exchange a
// message, and node.links shows the link on both.
func TestTCPLinks(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, stop := tcpPair(t, ctx)
	defer stop()
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
	text := scrape(t, ctx, a)
	for _, want := range []string{`meshd_links_up{kind="tcp"} 1`, `meshd_links_up{kind="ip"} 0`, `meshd_tcp_handshake_failures_total 0`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, `meshd_link_frames_in_total{kind="tcp"} 0`) {
		t.Errorf("no TCP frames counted:\n%s", text)
	}
}

// TestTCPLinksCarryChannels: a channel message crosses a TCP link (mesh
// links flood channel frames; there is no gossip between the two nodes).
func TestTCPLinksCarryChannels(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, stop := tcpPair(t, ctx)
	defer stop()
	ch, err := a.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	share, _ := a.ChannelShare(ctx, ch.ID)
	name, key, _ := rpcapi.ParseChannelShare(share.Share)
	if _, err := b.ChannelJoin(ctx, name, key); err != nil {
		t.Fatal(err)
	}
	events, cancelSub, _ := b.Subscribe(ctx)
	defer cancelSub()
	if _, err := a.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: ch.ID, Text: "over tcp"}); err != nil {
		t.Fatal(err)
	}
	ev := waitKind(t, ctx, events, rpcapi.EventChannelMessage)
	if ev.ChannelMessage == nil || ev.ChannelMessage.Text != "over tcp" {
		t.Errorf("channel event %+v", ev)
	}
}

// scrape reads n's /metrics.
func scrape(t *testing.T, ctx context.Context, n *Node) string {
	t.Helper()
	m, err := startMetrics(n, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.shutdown(ctx)
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
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
	// Its traffic stays in the per-kind counters.
	text := scrape(t, ctx, a)
	if !strings.Contains(text, `meshd_links_up{kind="lora"} 0`) || strings.Contains(text, `meshd_link_frames_out_total{kind="lora"} 0`) {
		t.Errorf("lora metrics after the link went down:\n%s", text)
	}
}

// refusingLink refuses its first Sends, as a modem that answers an error
// does.
type refusingLink struct {
	contract.Link
	refuse atomic.Int32
}

func (r *refusingLink) Send(ctx context.Context, frame []byte) error {
	if r.refuse.Add(-1) >= 0 {
		return errors.New("test: modem refused the frame")
	}
	return r.Link.Send(ctx, frame)
}

// TestWindowedLinkRefusedSend: a windowed link that refuses a frame sends
// no TxDone for it; the daemon reports it given up, or the window of 1
// would stay shut and nothing more would go out on the link.
func TestWindowedLinkRefusedSend(t *testing.T) {
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
	ra := &refusingLink{Link: la}
	ra.refuse.Store(1)
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	ta.ch <- ra
	tb.ch <- lb
	waitKind(t, ctx, evB, rpcapi.EventPeerUp)
	exchange(t, ctx, a, b, "after a refusal")
}
