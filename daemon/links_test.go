package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
func tcpPair(t testing.TB, ctx context.Context) (a, b *Node, stop func()) {
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
	// A bound, not a measure: the exchanges take well under a second (a
	// session message to a node whose key came after it waited for the
	// custody retry, 27-30 s each way, until the engine sent it on the key).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	ta.ch <- ra
	tb.ch <- lb
	// Both links up before the first send: a path request sent before
	// them would be repeated only a minute later.
	waitKind(t, ctx, evA, rpcapi.EventPeerUp)
	waitKind(t, ctx, evB, rpcapi.EventPeerUp)
	exchange(t, ctx, a, b, "before")
	// The next frame A hands the link (the envelope) is refused; the hop
	// acknowledgement that does not come makes A send it again, through
	// the window the daemon opened.
	ra.refuse.Store(1)
	exchange(t, ctx, a, b, "after a refusal")
	if ra.refuse.Load() >= 0 {
		t.Fatal("no frame was refused")
	}
}

// TestBridgeLibp2pTCP: B has a libp2p link to A and a TCP link to C; a
// message crosses from A to C and back, and a channel message from A
// (gossip to B) reaches C (flooded on the TCP link) and one from C
// reaches A, each once.
func TestBridgeLibp2pTCP(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgB := testConfig(t)
	cfgB.TCP.Listen = "127.0.0.1:0"
	b, stopB := startNode(t, cfgB)
	defer stopB()
	a, stopA := startNode(t, testConfig(t))
	defer stopA()
	evB, cancelB, _ := b.Subscribe(ctx)
	defer cancelB()
	if _, err := a.Connect(ctx, b.host.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	cfgC := testConfig(t)
	cfgC.TCP.Peers = []string{b.tcpAddr()}
	c, stopC := startNode(t, cfgC)
	defer stopC()
	kinds := map[string]bool{}
	for len(kinds) < 2 {
		ev := waitKind(t, ctx, evB, rpcapi.EventPeerUp)
		kinds[ev.Peer.Kind] = true // "" for libp2p, "tcp"
	}
	exchange(t, ctx, a, c, "a to c")
	exchange(t, ctx, c, a, "c to a")

	ch, err := a.ChannelCreate(ctx, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	share, _ := a.ChannelShare(ctx, ch.ID)
	name, key, _ := rpcapi.ParseChannelShare(share.Share)
	for _, n := range []*Node{b, c} {
		if _, err := n.ChannelJoin(ctx, name, key); err != nil {
			t.Fatal(err)
		}
	}
	evC, cancelC, _ := c.Subscribe(ctx)
	defer cancelC()
	evA, cancelA, _ := a.Subscribe(ctx)
	defer cancelA()
	// Gossip needs B's subscription to reach A first: publish until C
	// has one.
	for i := 0; ; i++ {
		if _, err := a.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: ch.ID, Text: fmt.Sprintf("from a %d", i)}); err != nil {
			t.Fatal(err)
		}
		wctx, wdone := context.WithTimeout(ctx, 2*time.Second)
		ev := waitKindOrNil(wctx, evC, rpcapi.EventChannelMessage)
		wdone()
		if ev != nil {
			break
		}
	}
	if _, err := c.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: ch.ID, Text: "from c"}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := waitKind(t, ctx, evA, rpcapi.EventChannelMessage)
		if ev.ChannelMessage.Text == "from c" {
			break
		}
	}
	hist, err := a.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: ch.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range hist.Messages {
		if m.Text == "from c" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("A's history has %d copies of C's message, want 1", n)
	}
	histC, err := c.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: ch.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range histC.Messages {
		if seen[m.Text] {
			t.Errorf("C has %q twice", m.Text)
		}
		seen[m.Text] = true
	}
}

// TestLinksListsLibp2p: node.links lists a libp2p link with its peer and
// the traffic the daemon counted.
func TestLinksListsLibp2p(t *testing.T) {
	noLeaks(t)
	a, b, stop := twoNodes(t)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exchange(t, ctx, a, b, "counted")
	links, err := a.Links(ctx)
	if err != nil || len(links) != 1 {
		t.Fatalf("links %+v, %v", links, err)
	}
	l := links[0]
	if l.Kind != "ip" || l.Name != b.host.ID().String() || l.Peer != b.id.Address().String() || l.State != "up" ||
		l.FramesIn == 0 || l.FramesOut == 0 || l.BytesOut == 0 || l.Radio != nil {
		t.Errorf("link %+v", l)
	}
}

// TestLinksListsWaitingPeers: a configured TCP peer without a link is
// listed by node.links (ID 0, not up) so operators see what is missing.
func TestLinksListsWaitingPeers(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	cfg := testConfig(t)
	cfg.TCP.Peers = []string{addr}
	n, stop := startNode(t, cfg)
	defer stop()
	links, err := n.Links(t.Context())
	if err != nil || len(links) != 1 {
		t.Fatalf("links %+v, %v", links, err)
	}
	if l := links[0]; l.ID != 0 || l.Kind != "tcp" || l.Name != addr || (l.State != "connecting" && l.State != "down") {
		t.Errorf("waiting peer listed as %+v", l)
	}
}
