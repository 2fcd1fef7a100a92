package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// fakeGossip records what the node asks of gossip.
type fakeGossip struct {
	mu        sync.Mutex
	joined    map[protocol.ChannelID]bool
	published chan []byte
}

func newFakeGossip() *fakeGossip {
	return &fakeGossip{joined: map[protocol.ChannelID]bool{}, published: make(chan []byte, 64)}
}

func (g *fakeGossip) JoinChannel(id protocol.ChannelID) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joined[id] = true
	return nil
}

func (g *fakeGossip) LeaveChannel(id protocol.ChannelID) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.joined, id)
	return nil
}

func (g *fakeGossip) PublishChannel(_ context.Context, _ protocol.ChannelID, frame []byte) error {
	g.published <- frame
	return nil
}

func (g *fakeGossip) isJoined(id protocol.ChannelID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joined[id]
}

// startGossipNode starts a node whose gossip is g.
func startGossipNode(t *testing.T, cfg Config, g *fakeGossip) (*Node, func()) {
	t.Helper()
	n, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.gossip = g
	// Channels restored by Open subscribed on the placeholder; subscribe
	// them on g as the real host would have been.
	for _, c := range n.chans.list() {
		g.JoinChannel(c.ID())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return n, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
}

func sealFor(t *testing.T, key protocol.ChannelKey, now time.Time, body string, signer *protocol.Identity) []byte {
	t.Helper()
	f, err := protocol.SealChannel(rand.Reader, key, 5, now, []byte(body), signer)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestChannelLifecycle(t *testing.T) {
	noLeaks(t)
	cfg := testConfig(t)
	cfg.Channels.HistorySize = 3
	g := newFakeGossip()
	n, stop := startGossipNode(t, cfg, g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := n.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ChannelCreate(ctx, "ops"); !errors.Is(err, rpcapi.ErrInvalidParams) {
		t.Errorf("a second channel named ops: %v", err)
	}
	share, err := n.ChannelShare(ctx, "ops")
	if err != nil || share.Channel != c.ID {
		t.Fatalf("share: %+v %v", share, err)
	}
	_, key, err := rpcapi.ParseChannelShare(share.Share)
	if err != nil || key.ID().String() != c.ID || !g.isJoined(key.ID()) {
		t.Fatalf("share string %v, gossip joined %v", err, g.isJoined(key.ID()))
	}
	// Publishing: the frame goes to gossip and into the node's own history.
	res, err := n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: c.ID, Text: "mine", Signed: true})
	if err != nil || res.Seq == 0 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	select {
	case fr := <-g.published:
		f, err := protocol.ParseChannelFrame(fr)
		if err != nil || f.Channel != key.ID() {
			t.Fatalf("published frame: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("nothing published on gossip")
	}
	// A frame from gossip is delivered once: as an event and in history.
	ev, cancelSub, _ := n.Subscribe(ctx)
	defer cancelSub()
	other := mustIdentity(t)
	frame := sealFor(t, key, time.Now(), "from a member", other)
	n.chans.deliver(frame)
	n.chans.deliver(frame) // gossip and a mesh link may both bring it: one delivery
	got := waitKind(t, ctx, ev, rpcapi.EventChannelMessage).ChannelMessage
	if got.Text != "from a member" || !got.Signed || got.From != other.Address().String() || got.ChannelName != "ops" {
		t.Fatalf("event %+v", got)
	}
	// Both copies have been through the engine and a drain.
	for n.snap.Load().counters.FloodIn < 2 {
		if err := n.call(ctx, func() {}); err != nil {
			t.Fatal(err)
		}
	}
	if d := n.snap.Load().counters.FloodDuplicate; d != 1 {
		t.Errorf("%d duplicates counted, want 1", d)
	}
	page, err := n.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: "ops", Limit: 10})
	if err != nil || len(page.Messages) != 2 || !page.Messages[0].Local || page.Messages[1].Text != "from a member" {
		t.Fatalf("history %+v %v", page, err)
	}

	// Bad input: a channel not joined, an oversized message.
	if _, err := n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: "nope", Text: "x"}); !errors.Is(err, rpcapi.ErrNotJoined) {
		t.Errorf("publish to a channel not joined: %v", err)
	}
	big := bytes.Repeat([]byte{1}, protocol.MaxChannelFrameSize)
	if _, err := n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: "ops", Payload: big}); !errors.Is(err, rpcapi.ErrRefused) {
		t.Errorf("oversized publish: %v", err)
	}

	// Restart: the channel, its key and history survive, and the node
	// delivers it again at once.
	stop()
	g = newFakeGossip()
	n, stop = startGossipNode(t, cfg, g)
	defer func() { stop() }()
	list, _ := n.ChannelList(ctx)
	if len(list) != 1 || list[0].ID != c.ID || list[0].Name != "ops" {
		t.Fatalf("channels after restart: %+v", list)
	}
	ev2, cancelSub2, _ := n.Subscribe(ctx)
	defer cancelSub2()
	n.chans.deliver(sealFor(t, key, time.Now(), "after restart", nil))
	if got := waitKind(t, ctx, ev2, rpcapi.EventChannelMessage).ChannelMessage; got.Text != "after restart" || got.Signed || got.From != "" {
		t.Fatalf("event after restart %+v", got)
	}

	// Leaving stops delivery at once and deletes the key and history.
	if _, err := n.ChannelLeave(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if g.isJoined(key.ID()) {
		t.Error("still subscribed to the topic after leaving")
	}
	if err := n.chans.validate(peer.ID("x"), sealFor(t, key, time.Now(), "late", nil)); !errors.Is(err, errGossipUnknown) {
		t.Errorf("validator after leave: %v", err)
	}
	n.chans.deliver(sealFor(t, key, time.Now(), "late", nil))
	if _, err := n.ChannelHistory(ctx, rpcapi.ChannelHistoryParams{Channel: c.ID, Limit: 1}); !errors.Is(err, rpcapi.ErrNotJoined) {
		t.Errorf("history after leave: %v", err)
	}
	if err := n.call(ctx, func() {}); err != nil { // the late frame has been through the loop
		t.Fatal(err)
	}
	chans, _ := n.st.Channels()
	entries, _, _, _ := n.st.History(key.ID(), 0, 10)
	if len(chans) != 0 || len(entries) != 0 {
		t.Errorf("after leave the store holds %d channels, %d history entries", len(chans), len(entries))
	}
	select {
	case e := <-ev2:
		if e.Kind == rpcapi.EventChannelMessage {
			t.Errorf("delivered after leave: %+v", e.ChannelMessage)
		}
	default:
	}
}

func mustIdentity(t *testing.T) *protocol.Identity {
	t.Helper()
	id, err := protocol.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGossipValidator(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newChannels(func() time.Time { return now }, 10)
	key := protocol.ChannelKey{7}
	c.put(store.Channel{Key: key, Name: "ops"})
	good := sealFor(t, key, now, "hi", nil)
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"good", good, nil},
		{"empty", nil, errGossipMalformed},
		{"not a channel frame", []byte{0x01, 0x50, 1, 2, 3}, errGossipMalformed},
		{"oversized", make([]byte, protocol.MaxChannelFrameSize+1), errGossipMalformed},
		{"stale", sealFor(t, key, now.Add(-31*time.Minute), "old", nil), errGossipStale},
		{"from the future", sealFor(t, key, now.Add(11*time.Minute), "soon", nil), errGossipStale},
		{"unknown channel", sealFor(t, protocol.ChannelKey{8}, now, "hi", nil), errGossipUnknown},
		{"bad MAC", forged, errGossipForged},
	} {
		if err := c.validate(peer.ID("p1"), tc.frame); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if c.stats.malformed.Load() != 3 || c.stats.stale.Load() != 2 || c.stats.unknown.Load() != 1 || c.stats.forged.Load() != 1 {
		t.Errorf("counters %d %d %d %d", c.stats.malformed.Load(), c.stats.stale.Load(), c.stats.unknown.Load(), c.stats.forged.Load())
	}
}

// TestGossipRateLimits: no forwarding peer is cut off at a burst of its
// own (gossipsub marks a frame's ID seen before validating it, so a frame
// refused because of who forwarded it would be lost, the honest copies
// dropped as duplicates; the transport scores fast peers instead). A noisy
// signing member behind several peers is cut off at its burst; the
// channel's own limit caps everyone together.
func TestGossipRateLimits(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newChannels(func() time.Time { return now }, 10)
	key := protocol.ChannelKey{7}
	c.put(store.Channel{Key: key, Name: "ops"})
	accepted := func(from string, n int, signer *protocol.Identity) int {
		ok := 0
		for range n {
			if c.validate(peer.ID(from), sealFor(t, key, now, "x", signer)) == nil {
				ok++
			}
		}
		return ok
	}
	const fast = 150 // more than any per-peer burst, less than the channel's
	if got := accepted("fast", fast, nil); got != fast {
		t.Errorf("a fast forwarding peer got %d of %d frames through", got, fast)
	}
	member := mustIdentity(t)
	through := 0
	for i := range 10 {
		through += accepted(string(rune('a'+i)), 5, member)
	}
	if through != senderBurst {
		t.Errorf("a signing member spread over 10 peers got %d through, want its burst %d", through, senderBurst)
	}
	if got, want := accepted("quiet", 100, nil), channelBurst-fast-senderBurst; got != want {
		t.Errorf("the channel let %d more frames through, want the rest of its burst, %d", got, want)
	}
	if c.stats.limited.Load() == 0 {
		t.Error("rate-limited frames not counted")
	}
	// One second later the channel's bucket has refilled by its rate.
	now = now.Add(time.Second)
	if got := accepted("fast", 100, nil); got != int(channelRate) {
		t.Errorf("after 1 s the channel let %d through, want %v", got, channelRate)
	}
}

// TestPublishRacingLeave: channel.publish finds its channel before it
// reaches the loop; a channel.leave that gets there first deletes the key
// and the history. The publish must then be refused, not sent under the
// deleted key and written into the history of a channel left.
func TestPublishRacingLeave(t *testing.T) {
	noLeaks(t)
	g := newFakeGossip()
	n, stop := startGossipNode(t, testConfig(t), g)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := n.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	id := n.chans.list()[0].ID()
	release := make(chan struct{})
	held := make(chan struct{})
	go n.call(ctx, func() { close(held); <-release; _ = n.leaveChannel(id) })
	<-held
	published := make(chan error, 1)
	go func() {
		_, err := n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: c.ID, Text: "late"})
		published <- err
	}()
	// The publish has resolved the channel and waits behind the leave.
	for len(n.cmds) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		default:
			runtime.Gosched()
		}
	}
	close(release)
	if err := <-published; !errors.Is(err, rpcapi.ErrNotJoined) {
		t.Errorf("publish on a channel left meanwhile: %v, want ErrNotJoined", err)
	}
	if page, _, _, _ := n.st.History(id, 0, 10); len(page) != 0 {
		t.Errorf("the left channel has %d history entries", len(page))
	}
}

// TestLeaveAfterPublishInOneBatch: a publish and then a leave reach the
// loop in one batch; the engine's verdict on the publish comes after the
// leave deleted the history, which must stay deleted.
func TestLeaveAfterPublishInOneBatch(t *testing.T) {
	noLeaks(t)
	g := newFakeGossip()
	n, stop := startGossipNode(t, testConfig(t), g)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := n.ChannelCreate(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	id := n.chans.list()[0].ID()
	release := make(chan struct{})
	held := make(chan struct{})
	go n.call(ctx, func() { close(held); <-release })
	<-held
	waitQueued := func(k int) {
		for len(n.cmds) < k {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			default:
				runtime.Gosched()
			}
		}
	}
	published, left := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := n.ChannelPublish(ctx, rpcapi.ChannelPublishParams{Channel: c.ID, Text: "last"})
		published <- err
	}()
	waitQueued(1)
	go func() { _, err := n.ChannelLeave(ctx, c.ID); left <- err }()
	waitQueued(2)
	close(release)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
	<-published
	if page, _, _, _ := n.st.History(id, 0, 10); len(page) != 0 {
		t.Errorf("the left channel has %d history entries", len(page))
	}
}
