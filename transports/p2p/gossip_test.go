package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"meshd.dev/meshd/protocol"
)

// testChannelKey derives a channel key from seed.
func testChannelKey(t testing.TB, seed uint64) protocol.ChannelKey {
	t.Helper()
	k, err := protocol.NewChannelKey(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0xc4}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// frameSealer seals channel frames with a seeded message ID source.
type frameSealer struct {
	mu  sync.Mutex
	rnd *rand.ChaCha8
}

func newFrameSealer(seed uint64) *frameSealer {
	return &frameSealer{rnd: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0x5e})}
}

func (s *frameSealer) seal(t testing.TB, key protocol.ChannelKey, body string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := protocol.SealChannel(s.rnd, key, 5, time.Now(), []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// forge returns a well-formed frame of key's channel whose tag does not
// verify: what a peer without the key (or a corrupting one) sends.
func (s *frameSealer) forge(t testing.TB, key protocol.ChannelKey, body string) []byte {
	t.Helper()
	f := s.seal(t, key, body)
	f[len(f)-1] ^= 0xff
	return f
}

// gossipNode is a gossip host with the channel keys it holds and the
// frames delivered to it.
type gossipNode struct {
	h *Host

	mu        sync.Mutex
	keys      map[protocol.ChannelID]protocol.ChannelKey
	delivered map[[protocol.ChannelDedupKeySize]byte]int
	total     int
	rejected  int
}

// validate is the cheap check a daemon runs: known channel, fresh, MAC.
func (n *gossipNode) validate(_ peer.ID, frame []byte) error {
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return err
	}
	if err := f.CheckFresh(time.Now(), 30*time.Minute, 10*time.Minute); err != nil {
		return err
	}
	n.mu.Lock()
	key, ok := n.keys[f.Channel]
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("channel %v: %w", f.Channel, ErrGossipIgnore)
	}
	if _, err := f.Open(key); err != nil {
		n.mu.Lock()
		n.rejected++
		n.mu.Unlock()
		return err
	}
	return nil
}

func (n *gossipNode) deliver(frame []byte) {
	f, err := protocol.ParseChannelFrame(frame)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.total++
	if err == nil {
		n.delivered[f.DedupKey()]++
	}
}

func (n *gossipNode) addKey(k protocol.ChannelKey) {
	n.mu.Lock()
	n.keys[k.ID()] = k
	n.mu.Unlock()
}

// counts returns the number of frames delivered and how often frame was.
func (n *gossipNode) counts(frame []byte) (total, times int) {
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		panic(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.total, n.delivered[f.DedupKey()]
}

func newGossipNode(t testing.TB, seed uint64, edit func(*Config)) *gossipNode {
	t.Helper()
	n := &gossipNode{keys: make(map[protocol.ChannelID]protocol.ChannelKey),
		delivered: make(map[[protocol.ChannelDedupKeySize]byte]int)}
	n.h = newTestHost(t, seed, func(c *Config) {
		c.Gossip = GossipConfig{Enabled: true, Validate: n.validate, Deliver: n.deliver}
		if edit != nil {
			edit(c)
		}
	})
	return n
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// topicPeers returns how many peers h knows on the channel's topic.
func topicPeers(h *Host, id protocol.ChannelID) int { return len(topicPeerIDs(h, id)) }

// topicPeerIDs returns the peers h knows on the channel's topic (joined).
func topicPeerIDs(h *Host, id protocol.ChannelID) []peer.ID {
	h.gossip.mu.Lock()
	defer h.gossip.mu.Unlock()
	ct := h.gossip.topics[id]
	if ct == nil {
		return nil
	}
	return ct.topic.ListPeers()
}

func TestGossipOff(t *testing.T) {
	h := newTestHost(t, 1, nil)
	var id protocol.ChannelID
	if err := h.JoinChannel(id); !errors.Is(err, ErrGossipOff) {
		t.Errorf("JoinChannel: %v, want ErrGossipOff", err)
	}
	if err := h.PublishChannel(t.Context(), id, nil); !errors.Is(err, ErrGossipOff) {
		t.Errorf("PublishChannel: %v, want ErrGossipOff", err)
	}
}

// TestGossipChannel: three hosts in a line, A and C members, B a member
// too (gossipsub forwards only among subscribers). A frame published at A
// reaches B and C once, not A itself; after C leaves, nothing reaches C;
// a non-member publishing (a bridge) reaches members; a forged frame
// reaches no one.
func TestGossipChannel(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 1)
	id := key.ID()
	seal := newFrameSealer(1)
	a, b, c := newGossipNode(t, 11, nil), newGossipNode(t, 12, nil), newGossipNode(t, 13, nil)
	d := newGossipNode(t, 14, nil) // not a member: publishes as a bridge
	for _, n := range []*gossipNode{a, b, c} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]*gossipNode{{a, b}, {b, c}, {d, a}} {
		if _, err := pair[0].h.Connect(ctx, pair[1].h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	// The DHT may connect A and C too: wait for a mesh at each member.
	waitFor(t, ctx, "meshes", func() bool {
		return a.h.ChannelMeshPeers(id) >= 1 && b.h.ChannelMeshPeers(id) >= 1 && c.h.ChannelMeshPeers(id) >= 1
	})

	f1 := seal.seal(t, key, "one")
	if err := a.h.PublishChannel(ctx, id, f1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "delivery at B and C", func() bool {
		_, nb := b.counts(f1)
		_, nc := c.counts(f1)
		return nb == 1 && nc == 1
	})
	if total, _ := a.counts(f1); total != 0 {
		t.Errorf("publisher got %d frames back", total)
	}

	if err := c.h.LeaveChannel(id); err != nil {
		t.Fatal(err)
	}
	bad := seal.forge(t, key, "forged")
	if err := a.h.PublishChannel(ctx, id, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "forged frame rejected at B", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.rejected == 1
	})
	f2 := seal.seal(t, key, "two")
	if err := d.h.PublishChannel(ctx, id, f2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "bridged frame at A and B", func() bool {
		_, na := a.counts(f2)
		_, nb := b.counts(f2)
		return na == 1 && nb == 1
	})
	if total, _ := c.counts(f2); total != 1 {
		t.Errorf("C got %d frames, want only the one before leaving", total)
	}
	if total, _ := b.counts(bad); total != 2 {
		t.Errorf("B got %d frames, want 2 (no forged one)", total)
	}
	if total, _ := d.counts(f2); total != 0 {
		t.Errorf("non-member got %d frames", total)
	}
	if err := d.h.PublishChannel(ctx, protocol.ChannelID{1, 2, 3, 4}, f2); !errors.Is(err, ErrGossipTopic) {
		t.Errorf("publish on another channel's topic: %v, want ErrGossipTopic", err)
	}
}

// TestGossipJunkCannotSquatID: a peer that sends junk under a genuine
// frame's dedup key first (it saw the frame on another path) must not make
// its neighbour drop the genuine frame as a duplicate: gossipsub marks a
// message ID seen before validating, so the ID must cover the frame's
// bytes, not only its dedup key.
func TestGossipJunkCannotSquatID(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 3)
	id := key.ID()
	seal := newFrameSealer(3)
	victim, attacker, honest := newGossipNode(t, 31, nil), newGossipNode(t, 32, nil), newGossipNode(t, 33, nil)
	for _, n := range []*gossipNode{victim, attacker, honest} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*gossipNode{attacker, honest} {
		if _, err := n.h.Connect(ctx, victim.h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "victim's topic peers", func() bool { return topicPeers(victim.h, id) >= 2 })

	genuine := seal.seal(t, key, "genuine")
	junk := bytes.Clone(genuine)
	junk[protocol.ChannelOverhead-protocol.ChannelTagSize] ^= 0x01 // a ciphertext bit; same dedup key
	if err := attacker.h.PublishChannel(ctx, id, junk); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "junk rejected", func() bool { return victim.h.GossipStats().Rejected == 1 })
	if err := honest.h.PublishChannel(ctx, id, genuine); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "genuine frame delivered", func() bool { _, n := victim.counts(genuine); return n == 1 })
}

func TestGossipValidationResult(t *testing.T) {
	for _, c := range []struct {
		err  error
		want pubsub.ValidationResult
	}{
		{nil, pubsub.ValidationAccept},
		{fmt.Errorf("x: %w", ErrGossipIgnore), pubsub.ValidationIgnore},
		{fmt.Errorf("x: %w", protocol.ErrNotForUs), pubsub.ValidationIgnore},
		{fmt.Errorf("x: %w", protocol.ErrExpired), pubsub.ValidationIgnore},
		{fmt.Errorf("x: %w", protocol.ErrFromFuture), pubsub.ValidationIgnore},
		{fmt.Errorf("x: %w", protocol.ErrDecrypt), pubsub.ValidationReject},
		{errors.New("anything else"), pubsub.ValidationReject},
	} {
		if got := validationResult(c.err); got != c.want {
			t.Errorf("validationResult(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestGossipRateLimit: a channel's bucket of 2 frames lets 2 of 5 distinct
// genuine frames through; the rest are ignored (no penalty), and the
// sender's score does not drop below zero.
func TestGossipRateLimit(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 4)
	id := key.ID()
	seal := newFrameSealer(4)
	a := newGossipNode(t, 41, nil)
	b := newGossipNode(t, 42, func(c *Config) { c.Gossip.TopicRate, c.Gossip.TopicBurst = 1e-9, 2 })
	for _, n := range []*gossipNode{a, b} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.h.Connect(ctx, b.h.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "topic peers", func() bool { return topicPeers(a.h, id) == 1 && topicPeers(b.h, id) == 1 })
	for i := range 5 {
		if err := a.h.PublishChannel(ctx, id, seal.seal(t, key, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "five frames validated or limited", func() bool {
		st := b.h.GossipStats()
		return st.Accepted+st.RateLimited == 5
	})
	if st := b.h.GossipStats(); st.Accepted != 2 || st.RateLimited != 3 || st.Rejected != 0 {
		t.Errorf("stats %+v, want 2 accepted, 3 rate limited", st)
	}
	waitFor(t, ctx, "2 frames delivered", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.total == 2
	})
	waitFor(t, ctx, "a score for the sender", func() bool { _, ok := b.h.GossipPeerScore(a.h.ID()); return ok })
	if s, _ := b.h.GossipPeerScore(a.h.ID()); s < 0 {
		t.Errorf("sender's score %v after rate-limited frames, want >= 0", s)
	}
}

// TestGossipRelayMode: a relay-mode host runs gossip with the wider mesh.
func TestGossipRelayMode(t *testing.T) {
	p := gossipParams(true)
	if p.D != 12 || p.Dlo != 8 || p.Dhi != 24 || p.Dlazy != 12 {
		t.Errorf("relay mesh degrees %d/%d/%d/%d", p.D, p.Dlo, p.Dhi, p.Dlazy)
	}
	n := newGossipNode(t, 43, func(c *Config) { c.Relay = true })
	if err := n.h.JoinChannel(protocol.ChannelID{1}); err != nil {
		t.Fatal(err)
	}
}

func TestGossipConfigErrors(t *testing.T) {
	for _, g := range []GossipConfig{
		{Enabled: true, MaxFrameSize: protocol.MaxChannelFrameSize + 1},
		{Enabled: true, MaxFrameSize: 3},
		{Enabled: true, PeerRate: -1},
		{Enabled: true, TopicBurst: -1},
	} {
		id := testIdentity(t, 44)
		_, err := New(t.Context(), Config{Identity: id, HostKey: testHostKey(t, id),
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: testLogger(t), Gossip: g})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("New with %+v: %v, want ErrConfig", g, err)
		}
	}
}

// TestGossipJunkKeepsRate: forged frames do not take tokens from the
// channel's bucket, so a forger cannot starve the channel's genuine frames
// (they are rejected, and count against it, instead).
func TestGossipJunkKeepsRate(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 5)
	id := key.ID()
	seal := newFrameSealer(5)
	honest, forger := newGossipNode(t, 51, nil), newGossipNode(t, 52, nil)
	victim := newGossipNode(t, 53, func(c *Config) { c.Gossip.TopicRate, c.Gossip.TopicBurst = 1e-9, 2 })
	for _, n := range []*gossipNode{honest, forger, victim} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*gossipNode{honest, forger} {
		if _, err := n.h.Connect(ctx, victim.h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "topic peers", func() bool {
		return slices.Contains(topicPeerIDs(forger.h, id), victim.h.ID()) &&
			slices.Contains(topicPeerIDs(honest.h, id), victim.h.ID())
	})
	for i := range 5 {
		if err := forger.h.PublishChannel(ctx, id, seal.forge(t, key, fmt.Sprint("junk ", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "junk rejected", func() bool { return victim.h.GossipStats().Rejected == 5 })
	f1, f2 := seal.seal(t, key, "one"), seal.seal(t, key, "two")
	for _, f := range [][]byte{f1, f2} {
		if err := honest.h.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "genuine frames delivered", func() bool {
		_, n1 := victim.counts(f1)
		_, n2 := victim.counts(f2)
		return n1 == 1 && n2 == 1
	})
	if st := victim.h.GossipStats(); st.RateLimited != 0 {
		t.Errorf("stats %+v: frames rate limited", st)
	}
}

// TestGossipPeerTopicsBounded: a peer announces subscriptions to ever more
// channel topics (256 per RPC are allowed, and any 4-byte ID makes a valid
// topic name). gossipsub keeps a map entry per topic and peer, so without a
// bound per peer one peer fills the host's memory.
func TestGossipPeerTopicsBounded(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 6)
	id := key.ID()
	seal := newFrameSealer(6)
	victim, attacker := newGossipNode(t, 61, nil), newGossipNode(t, 62, nil)
	for _, n := range []*gossipNode{victim, attacker} {
		n.addKey(key)
		if err := n.h.JoinChannel(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := attacker.h.Connect(ctx, victim.h.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "topic peers", func() bool { return topicPeers(attacker.h, id) == 1 && topicPeers(victim.h, id) == 1 })
	const announced = gossipMaxTopicsPerPeer + 100
	var topics []string
	for i := range announced {
		topic := ChannelTopic(protocol.ChannelID{0xee, byte(i >> 16), byte(i >> 8), byte(i)})
		tp, err := attacker.h.gossip.ps.Join(topic)
		if err != nil {
			t.Fatal(err)
		}
		// Never cancelled: 600 unsubscriptions at once would overflow the
		// send queue into pubsub's retry goroutines; closing the host ends
		// them all.
		if _, err := tp.Relay(); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
		if i%16 != 15 && i != announced-1 {
			continue
		}
		// A frame after every 16 announcements: once it is delivered, the
		// victim has handled the announcements before it (one stream, in
		// order), and the attacker's send queue (32) never overflows.
		f := seal.seal(t, key, fmt.Sprint("after ", i))
		if err := attacker.h.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the frame", func() bool { _, n := victim.counts(f); return n == 1 })
	}
	held := 0
	for _, topic := range topics {
		if slices.Contains(victim.h.gossip.ps.ListPeers(topic), attacker.h.ID()) {
			held++
		}
	}
	if held > gossipMaxTopicsPerPeer {
		t.Errorf("the victim holds %d topic subscriptions of one peer, bound %d", held, gossipMaxTopicsPerPeer)
	}
}

// publishBatches publishes frames from n in batches of 16, waiting after
// each batch until the victim has handled it (validated, limited or seen
// as a duplicate): gossipsub's send queue to one peer holds 32 messages
// and drops the rest.
func publishBatches(t *testing.T, ctx context.Context, n, victim *gossipNode, id protocol.ChannelID, frames [][]byte, handled func() uint64) {
	t.Helper()
	start := handled()
	for i, f := range frames {
		if err := n.h.PublishChannel(ctx, id, f); err != nil {
			t.Fatal(err)
		}
		if i%16 == 15 || i == len(frames)-1 {
			want := start + uint64(i+1)
			waitFor(t, ctx, fmt.Sprint(i+1, " frames handled"), func() bool { return handled() == want })
		}
	}
}

// bridgesTo connects bridge hosts (they publish without joining the
// topic) to victim, a member, and waits until each knows the victim's
// subscription.
func bridgesTo(t *testing.T, ctx context.Context, victim *gossipNode, id protocol.ChannelID, bridges ...*gossipNode) {
	t.Helper()
	for _, n := range bridges {
		if _, err := n.h.Connect(ctx, victim.h.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the victim's subscription at the bridges", func() bool {
		for _, n := range bridges {
			if !slices.Contains(n.h.gossip.ps.ListPeers(ChannelTopic(id)), victim.h.ID()) {
				return false
			}
		}
		return true
	})
}

// TestGossipFastPeerCannotEraseFrames: gossipsub marks a message ID seen
// before it validates the message. A fast neighbour (hostile, or honest
// and busy) hands the victim more genuine frames than its per-peer budget;
// an honest neighbour then hands over the same frames. Had the per-peer
// rate decided the verdict, the frames over the fast peer's budget would
// have been ignored and their IDs kept as seen, so the honest copies would
// be dropped as duplicates and the frames lost. Every frame must reach
// Deliver exactly once.
func TestGossipFastPeerCannotEraseFrames(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 7)
	id := key.ID()
	seal := newFrameSealer(7)
	victim := newGossipNode(t, 71, func(c *Config) { c.Gossip.PeerRate, c.Gossip.PeerBurst = 1e-9, 2 })
	fast, honest := newGossipNode(t, 72, nil), newGossipNode(t, 73, nil)
	victim.addKey(key)
	if err := victim.h.JoinChannel(id); err != nil {
		t.Fatal(err)
	}
	bridgesTo(t, ctx, victim, id, fast, honest)

	const n = 6
	var frames [][]byte
	for i := range n {
		frames = append(frames, seal.seal(t, key, fmt.Sprint("frame ", i)))
	}
	validated := func() uint64 { st := victim.h.GossipStats(); return st.Accepted + st.RateLimited }
	publishBatches(t, ctx, fast, victim, id, frames, validated)
	dups := func() uint64 { return victim.h.GossipStats().Duplicates }
	publishBatches(t, ctx, honest, victim, id, frames, dups)
	// Every copy has been validated or dropped as a duplicate; wait until
	// every accepted frame has reached Deliver.
	waitFor(t, ctx, "accepted frames delivered", func() bool {
		total, _ := victim.counts(frames[0])
		return uint64(total) == victim.h.GossipStats().Accepted
	})
	for i, f := range frames {
		if _, k := victim.counts(f); k != 1 {
			t.Errorf("frame %d delivered %d times, want once", i, k)
		}
	}
}

// TestGossipFloodingPeerScored: a peer that keeps handing over valid
// frames above its per-peer rate has its frames accepted but sinks below
// the gossip threshold through the application score, which decays.
func TestGossipFloodingPeerScored(t *testing.T) {
	ctx := testContext(t)
	key := testChannelKey(t, 8)
	id := key.ID()
	seal := newFrameSealer(8)
	victim := newGossipNode(t, 81, func(c *Config) {
		c.Gossip.PeerRate, c.Gossip.PeerBurst = 1e-9, 2
		c.Gossip.TopicRate, c.Gossip.TopicBurst = rate.Inf, 1
	})
	flooder, calm := newGossipNode(t, 82, nil), newGossipNode(t, 83, nil)
	victim.addKey(key)
	if err := victim.h.JoinChannel(id); err != nil {
		t.Fatal(err)
	}
	bridgesTo(t, ctx, victim, id, flooder, calm)
	var frames [][]byte
	for i := range 300 {
		frames = append(frames, seal.seal(t, key, fmt.Sprint("flood ", i)))
	}
	accepted := func() uint64 { return victim.h.GossipStats().Accepted }
	publishBatches(t, ctx, flooder, victim, id, frames, accepted)
	publishBatches(t, ctx, calm, victim, id, [][]byte{seal.seal(t, key, "calm")}, accepted)
	if st := victim.h.GossipStats(); st.OverPeerRate != 300-2 {
		t.Errorf("stats %+v, want %d frames over the peer rate", st, 300-2)
	}
	waitFor(t, ctx, "the flooder below the gossip threshold", func() bool {
		s, ok := victim.h.GossipPeerScore(flooder.h.ID())
		return ok && s < gossipThreshold
	})
	waitFor(t, ctx, "a score for the calm peer", func() bool { _, ok := victim.h.GossipPeerScore(calm.h.ID()); return ok })
	if s, _ := victim.h.GossipPeerScore(calm.h.ID()); s < 0 {
		t.Errorf("calm peer's score %v, want >= 0", s)
	}
	if total, _ := victim.counts(frames[0]); total != 301 {
		t.Errorf("victim got %d frames, want all 301", total)
	}
}
