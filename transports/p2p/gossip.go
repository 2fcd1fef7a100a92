package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"meshd.dev/meshd/protocol"
)

// Gossip errors.
var (
	// ErrGossipOff reports a channel call on a host without gossip
	// (Config.Gossip.Enabled false).
	ErrGossipOff = errors.New("p2p: gossip is off")
	// ErrGossipIgnore, wrapped in an error of GossipConfig.Validate, makes
	// gossipsub drop the frame without holding it against the peer that
	// sent it (gossipsub's ValidationIgnore): for frames that are not the
	// sender's fault, such as a channel this node does not hold.
	ErrGossipIgnore = errors.New("p2p: gossip frame ignored")
	// ErrGossipTopic reports a frame whose channel ID is not its topic's.
	ErrGossipTopic = errors.New("p2p: channel frame on another channel's topic")
)

// ChannelTopicPrefix starts every channel topic name; the rest is the
// channel ID in lowercase hex (ChannelTopic).
const ChannelTopicPrefix = "/meshd/ch/1/"

// ChannelTopic returns the gossipsub topic of a channel:
// "/meshd/ch/1/<8 hex digits of the channel ID>". The name reveals the
// 4-byte ID, which every frame of the channel carries in clear anyway, and
// nothing else (not the key, not the channel's name).
func ChannelTopic(id protocol.ChannelID) string { return ChannelTopicPrefix + id.String() }

// GossipConfig turns on gossipsub for broadcast channels. The zero value
// keeps gossip off (no pubsub runs, no protocol is announced).
type GossipConfig struct {
	Enabled bool
	// Validate is the cheap check of a frame received on a channel topic
	// (known channel, fresh, MAC), run on gossipsub goroutines before the
	// frame is delivered or forwarded: it must be safe for concurrent use
	// and fast. The host has already checked that the frame parses
	// (protocol.ParseChannelFrame) and names its topic's channel; frames
	// that fail those checks are rejected before Validate sees them.
	// nil accepts the frame; an error wrapping ErrGossipIgnore,
	// protocol.ErrNotForUs, protocol.ErrExpired or protocol.ErrFromFuture
	// drops it without penalty (not necessarily the forwarder's fault: a
	// clock, a channel this node left); any other error rejects it, which
	// counts against the peer that sent it (peer score P4). A nil Validate
	// accepts every well-formed frame. Frames this host publishes are not
	// passed to Validate (the caller checked them).
	Validate func(from peer.ID, frame []byte) error
	// Deliver receives every accepted frame of a joined channel once
	// (gossipsub suppresses duplicates by message ID, see
	// GossipMessageID), but not frames this host published. It is called
	// on the channel's read goroutine: it must not block for long, and it
	// must not call the host's channel methods or Close (LeaveChannel and
	// Close wait for it to return while holding the lock the others take):
	// hand the frame to another goroutine. The frame is a copy and belongs
	// to Deliver.
	Deliver func(frame []byte)
	// MaxFrameSize is the largest frame accepted and published (default
	// and at most protocol.MaxChannelFrameSize); larger frames are
	// rejected.
	MaxFrameSize int
	// SeenTTL is how long gossipsub remembers a message ID (default
	// DefaultGossipSeenTTL). Set it to at least the freshness bound plus
	// the clock skew receivers allow (routing.Config.FloodMaxAge +
	// ClockSkew): a frame seen again after its ID was forgotten passes
	// Validate again and is forwarded again, so a shorter memory lets
	// anyone replay a recorded frame through the whole network.
	SeenTTL time.Duration
	// PeerRate and PeerBurst are the valid frames per second (and the
	// burst) one peer may be first to bring in, all channels together
	// (defaults DefaultGossipPeerRate, DefaultGossipPeerBurst; rate.Inf
	// turns the scoring off). They never decide a frame's verdict:
	// gossipsub marks a message ID seen before validating it, so a frame
	// ignored because of who forwarded it would be lost for good, the
	// honest copies dropped as duplicates. A frame over its peer's rate is
	// accepted and counts against the peer's score instead (the
	// application-specific score, see gossipFloodWeight), which sinks a
	// peer that keeps flooding below the gossip, publish and graylist
	// thresholds. TopicRate and TopicBurst bound the valid frames per
	// second of one channel from all peers together (DefaultGossipTopicRate,
	// DefaultGossipTopicBurst); frames beyond them are ignored: dropped,
	// neither delivered nor forwarded, with no score penalty. That limit
	// depends on the frame alone, so whoever delivers it, the verdict is
	// the same.
	PeerRate   rate.Limit
	PeerBurst  int
	TopicRate  rate.Limit
	TopicBurst int
}

// withDefaults fills in the zero fields and checks the rest.
func (c GossipConfig) withDefaults() (GossipConfig, error) {
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = protocol.MaxChannelFrameSize
	}
	if c.MaxFrameSize < protocol.ChannelOverhead || c.MaxFrameSize > protocol.MaxChannelFrameSize {
		return c, fmt.Errorf("%w: gossip MaxFrameSize %d not in %d..%d", ErrConfig, c.MaxFrameSize,
			protocol.ChannelOverhead, protocol.MaxChannelFrameSize)
	}
	if c.SeenTTL == 0 {
		c.SeenTTL = DefaultGossipSeenTTL
	}
	if c.SeenTTL < 0 {
		return c, fmt.Errorf("%w: gossip SeenTTL %v", ErrConfig, c.SeenTTL)
	}
	if c.PeerRate == 0 {
		c.PeerRate = DefaultGossipPeerRate
	}
	if c.PeerBurst == 0 {
		c.PeerBurst = DefaultGossipPeerBurst
	}
	if c.TopicRate == 0 {
		c.TopicRate = DefaultGossipTopicRate
	}
	if c.TopicBurst == 0 {
		c.TopicBurst = DefaultGossipTopicBurst
	}
	if c.PeerRate < 0 || c.PeerBurst < 1 || c.TopicRate < 0 || c.TopicBurst < 1 {
		return c, fmt.Errorf("%w: gossip rates must be positive", ErrConfig)
	}
	return c, nil
}

// GossipStats counts what gossip did with received frames.
type GossipStats struct {
	Accepted    uint64 // passed validation
	Rejected    uint64 // malformed, wrong topic, too large or refused by Validate
	Ignored     uint64 // Validate said ignore (unknown channel, stale)
	RateLimited uint64 // over a channel's rate (ignored)
	Duplicates  uint64 // copies dropped as already seen (before validation)
	// OverPeerRate counts accepted frames that were over their forwarding
	// peer's rate: they count against the peer's score, not the frame.
	OverPeerRate uint64
}

// gossip is the host's gossipsub state.
type gossip struct {
	ps     *pubsub.PubSub
	cancel context.CancelFunc // stops pubsub
	cfg    GossipConfig
	self   peer.ID

	tracer *meshTracer

	accepted, rejected, ignored, rateLimited atomic.Uint64

	limMu      sync.Mutex
	peerLimits *limiters[peer.ID]
	chanLimits *limiters[protocol.ChannelID]
	floods     *floodCounts // frames over each peer's rate, for its score
	overPeer   atomic.Uint64

	scoreMu sync.Mutex
	scores  map[peer.ID]float64

	mu     sync.Mutex
	closed bool
	topics map[protocol.ChannelID]*chanTopic
}

// chanTopic is a channel topic this host holds a handle for: joined (sub
// set) or used to publish only.
type chanTopic struct {
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	stop  context.CancelFunc
	done  chan struct{}
}

// startGossip starts gossipsub on h's libp2p host.
func startGossip(h *Host, cfg GossipConfig) (*gossip, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	filter := newChannelTopicFilter()
	g := &gossip{cancel: cancel, cfg: cfg, self: h.self, topics: make(map[protocol.ChannelID]*chanTopic),
		tracer:     newMeshTracer(filter),
		peerLimits: newLimiters[peer.ID](cfg.PeerRate, cfg.PeerBurst),
		chanLimits: newLimiters[protocol.ChannelID](cfg.TopicRate, cfg.TopicBurst),
		floods:     newFloodCounts(),
	}
	opts := []pubsub.Option{
		pubsub.WithGossipSubParams(gossipParams(h.cfg.Relay)),
		pubsub.WithPeerScore(gossipScoreParams(g.appScore), gossipThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.setScores), gossipScoreInspectPeriod),
		// A frame this host publishes goes to every peer on the topic, not
		// only its mesh: the first hop does not wait for the mesh to form
		// (a bridge publishes on topics it never joined).
		pubsub.WithFloodPublish(true),
		pubsub.WithRawTracer(g.tracer),
		pubsub.WithMessageIdFn(GossipMessageID),
		pubsub.WithSeenMessagesTTL(cfg.SeenTTL),
		// No gossipsub signatures, no author, no sequence number: the frame
		// carries its own MAC (and optional inner signature, readable by
		// members only), and an author field would tell every relay which
		// peer published (transports/README.md, Gossip).
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		// Inline: the check takes microseconds, less than handing it to a
		// goroutine of its own.
		pubsub.WithDefaultValidator(pubsub.ValidatorEx(g.validate), pubsub.WithValidatorInline(true)),
		pubsub.WithMaxMessageSize(gossipMaxRPCSize),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			filter, gossipMaxTopicsPerRPC)),
		pubsub.WithLogger(h.log.With("component", "gossipsub")),
	}
	ps, err := pubsub.NewGossipSub(ctx, h.host, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("p2p: gossipsub: %w", err)
	}
	g.ps = ps
	return g, nil
}

// channelTopicFilter lets peers subscribe this host only to channel
// topics (other names never reach the router's state), and each peer to at
// most gossipMaxTopicsPerPeer of them: any 4-byte ID makes a topic name,
// and gossipsub keeps an entry per topic and peer, so without the bound one
// peer announcing ever more topics fills the memory
// (TestGossipPeerTopicsBounded).
type channelTopicFilter struct {
	mu   sync.Mutex
	subs map[peer.ID]map[string]struct{}
}

func newChannelTopicFilter() *channelTopicFilter {
	return &channelTopicFilter{subs: make(map[peer.ID]map[string]struct{})}
}

func (*channelTopicFilter) CanSubscribe(topic string) bool {
	_, ok := parseChannelTopic(topic)
	return ok
}

func (f *channelTopicFilter) FilterIncomingSubscriptions(from peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	subs = pubsub.FilterSubscriptions(subs, f.CanSubscribe)
	f.mu.Lock()
	defer f.mu.Unlock()
	held := f.subs[from]
	out := subs[:0]
	for _, s := range subs {
		topic := s.GetTopicid()
		_, have := held[topic]
		switch {
		case !s.GetSubscribe():
			delete(held, topic)
		case have:
		case len(held) >= gossipMaxTopicsPerPeer:
			continue
		default:
			if held == nil {
				held = make(map[string]struct{})
				f.subs[from] = held
			}
			held[topic] = struct{}{}
		}
		out = append(out, s)
	}
	if len(held) == 0 {
		delete(f.subs, from)
	}
	return out, nil
}

// removePeer forgets a peer gossipsub dropped (and its subscriptions with
// it).
func (f *channelTopicFilter) removePeer(p peer.ID) {
	f.mu.Lock()
	delete(f.subs, p)
	f.mu.Unlock()
}

// parseChannelTopic returns the channel ID a topic name stands for.
func parseChannelTopic(topic string) (protocol.ChannelID, bool) {
	var id protocol.ChannelID
	if len(topic) != len(ChannelTopicPrefix)+2*protocol.ChannelIDSize || topic[:len(ChannelTopicPrefix)] != ChannelTopicPrefix {
		return id, false
	}
	for i := range id {
		hi, ok1 := unhex(topic[len(ChannelTopicPrefix)+2*i])
		lo, ok2 := unhex(topic[len(ChannelTopicPrefix)+2*i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[i] = hi<<4 | lo
	}
	return id, true
}

// unhex decodes a lowercase hex digit (the only form ChannelTopic writes,
// so every channel has exactly one topic name).
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Message ID prefixes: a channel frame's ID, or the hash of anything else.
const (
	msgIDFrame = 'c'
	msgIDOther = 'h'
	// msgIDHashSize is how much of the frame's SHA-256 a frame's message ID
	// keeps.
	msgIDHashSize = 16
)

// GossipMessageID is gossipsub's message ID function. For a channel frame
// it is 'c' || channel ID || message ID || send time (the frame's dedup
// key, as flooding uses) || the first 16 bytes of SHA-256 over the frame
// with its hop count zeroed. The hash is there because gossipsub marks an
// ID seen before validating the message: with the dedup key alone, a peer
// that raced junk ahead under a genuine frame's dedup key would make every
// node it reached drop the genuine frame as a duplicate. The hop count is
// left out so that copies of one frame that travelled different mesh
// paths (bridges publish what they hear) are one message. For data that
// is not a channel frame it is 'h' || SHA-256(data) (such messages are
// then rejected by the validator).
func GossipMessageID(m *pb.Message) string { return frameMessageID(m.GetData()) }

func frameMessageID(data []byte) string {
	f, err := protocol.ParseChannelFrame(data)
	if err != nil {
		sum := sha256.Sum256(data)
		return string(append([]byte{msgIDOther}, sum[:]...))
	}
	d := sha256.New()
	d.Write([]byte{data[0], data[1] & 0xf0})
	d.Write(data[2:])
	var sum [sha256.Size]byte
	key := f.DedupKey()
	id := make([]byte, 0, 1+len(key)+msgIDHashSize)
	id = append(id, msgIDFrame)
	id = append(id, key[:]...)
	return string(append(id, d.Sum(sum[:0])[:msgIDHashSize]...))
}

// validate is the default validator of every topic: the frame must parse,
// fit MaxFrameSize and name its topic's channel (else reject); frames of
// other peers must then pass GossipConfig.Validate and be within their
// channel's rate limit (else ignore). The forwarding peer's rate only
// feeds its score.
func (g *gossip) validate(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	r := g.verdict(from, m)
	switch r {
	case pubsub.ValidationAccept:
		g.accepted.Add(1)
	case pubsub.ValidationReject:
		g.rejected.Add(1)
	}
	return r
}

func (g *gossip) verdict(from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	id, ok := parseChannelTopic(m.GetTopic())
	if !ok || len(m.GetData()) > g.cfg.MaxFrameSize {
		return pubsub.ValidationReject
	}
	f, err := protocol.ParseChannelFrame(m.GetData())
	if err != nil || f.Channel != id {
		return pubsub.ValidationReject
	}
	if from == g.self {
		return pubsub.ValidationAccept
	}
	if g.cfg.Validate != nil {
		switch r := validationResult(g.cfg.Validate(from, m.GetData())); r {
		case pubsub.ValidationIgnore:
			g.ignored.Add(1)
			return r
		case pubsub.ValidationReject:
			return r
		}
	}
	// Only valid frames take tokens: junk must not empty a channel's
	// bucket and starve its genuine frames (TestGossipJunkKeepsRate).
	if !g.allow(from, id, time.Now()) {
		g.rateLimited.Add(1)
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationAccept
}

// allow takes a token from the channel's bucket; a frame within it takes
// one from the peer's bucket too, and one over the peer's rate is counted
// against the peer (TestGossipFastPeerCannotEraseFrames: the peer's rate
// must not decide the verdict).
func (g *gossip) allow(from peer.ID, id protocol.ChannelID, now time.Time) bool {
	g.limMu.Lock()
	defer g.limMu.Unlock()
	if !g.chanLimits.allow(id, now) {
		return false
	}
	if !g.peerLimits.allow(from, now) {
		g.overPeer.Add(1)
		g.floods.add(from, now)
	}
	return true
}

// appScore is gossipsub's application-specific score of a peer (P5): its
// decayed count of frames over its rate, times gossipFloodWeight.
func (g *gossip) appScore(p peer.ID) float64 {
	g.limMu.Lock()
	defer g.limMu.Unlock()
	return gossipFloodWeight * g.floods.get(p, time.Now())
}

func (g *gossip) setScores(s map[peer.ID]float64) {
	g.scoreMu.Lock()
	g.scores = s
	g.scoreMu.Unlock()
}

// GossipPeerScore returns gossipsub's score of a peer as of the last
// inspection (once a second), and whether the peer had one.
func (h *Host) GossipPeerScore(p peer.ID) (float64, bool) {
	if h.gossip == nil {
		return 0, false
	}
	h.gossip.scoreMu.Lock()
	defer h.gossip.scoreMu.Unlock()
	s, ok := h.gossip.scores[p]
	return s, ok
}

// GossipStats returns the counts of frames received by gossip.
func (h *Host) GossipStats() GossipStats {
	if h.gossip == nil {
		return GossipStats{}
	}
	g := h.gossip
	return GossipStats{Accepted: g.accepted.Load(), Rejected: g.rejected.Load(),
		Ignored: g.ignored.Load(), RateLimited: g.rateLimited.Load(), Duplicates: g.tracer.duplicates.Load(),
		OverPeerRate: g.overPeer.Load()}
}

// validationResult maps an error of GossipConfig.Validate to gossipsub's
// verdict.
func validationResult(err error) pubsub.ValidationResult {
	switch {
	case err == nil:
		return pubsub.ValidationAccept
	case errors.Is(err, ErrGossipIgnore), errors.Is(err, protocol.ErrNotForUs),
		errors.Is(err, protocol.ErrExpired), errors.Is(err, protocol.ErrFromFuture):
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationReject
}

// gossipOn returns the host's gossip or ErrGossipOff / ErrClosed.
func (h *Host) gossipOn() (*gossip, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if h.gossip == nil {
		return nil, ErrGossipOff
	}
	return h.gossip, nil
}

// JoinChannel subscribes to the channel's topic: from now on its frames
// are validated, delivered to GossipConfig.Deliver and forwarded. Joining a
// joined channel does nothing.
func (h *Host) JoinChannel(id protocol.ChannelID) error {
	g, err := h.gossipOn()
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	ct, err := g.topicLocked(id)
	if err != nil {
		return err
	}
	if ct.sub != nil {
		return nil
	}
	if err := ct.topic.SetScoreParams(channelTopicScoreParams()); err != nil {
		return fmt.Errorf("p2p: join channel %v: %w", id, err)
	}
	sub, err := ct.topic.Subscribe(pubsub.WithBufferSize(gossipSubBuffer))
	if err != nil {
		return fmt.Errorf("p2p: join channel %v: %w", id, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ct.sub, ct.stop, ct.done = sub, stop, make(chan struct{})
	go g.readLoop(ctx, sub, ct.done)
	return nil
}

// topicLocked returns the channel's topic handle, joining the topic in
// pubsub when there is none.
func (g *gossip) topicLocked(id protocol.ChannelID) (*chanTopic, error) {
	if ct := g.topics[id]; ct != nil {
		return ct, nil
	}
	t, err := g.ps.Join(ChannelTopic(id))
	if err != nil {
		return nil, fmt.Errorf("p2p: channel topic %v: %w", id, err)
	}
	ct := &chanTopic{topic: t}
	g.topics[id] = ct
	return ct, nil
}

// readLoop hands the frames of one subscription to Deliver until the
// subscription ends.
func (g *gossip) readLoop(ctx context.Context, sub *pubsub.Subscription, done chan struct{}) {
	defer close(done)
	for {
		m, err := sub.Next(ctx)
		if err != nil || ctx.Err() != nil {
			return
		}
		if m.ReceivedFrom == g.self || g.cfg.Deliver == nil {
			continue
		}
		// A copy: pubsub keeps the message to answer IWANTs, and the
		// receiver may change the hop count in place.
		g.cfg.Deliver(bytes.Clone(m.GetData()))
	}
}

// LeaveChannel unsubscribes from the channel's topic. When it returns,
// Deliver gets no more frames of the channel. Leaving a channel not joined
// does nothing.
func (h *Host) LeaveChannel(id protocol.ChannelID) error {
	g, err := h.gossipOn()
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ct := g.topics[id]
	if ct == nil || ct.sub == nil {
		return nil
	}
	return g.leaveLocked(id, ct)
}

// leaveLocked ends a joined topic's subscription, waits for its read loop
// and drops the topic handle.
func (g *gossip) leaveLocked(id protocol.ChannelID, ct *chanTopic) error {
	ct.stop()
	ct.sub.Cancel()
	<-ct.done
	ct.sub = nil
	return g.dropLocked(id, ct)
}

// dropLocked closes a topic handle without subscription. Cancel hands the
// subscription to pubsub's event loop before it returns, and Close queues
// behind it, so the topic has no subscription left when Close runs.
func (g *gossip) dropLocked(id protocol.ChannelID, ct *chanTopic) error {
	delete(g.topics, id)
	if err := ct.topic.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("p2p: close channel topic %v: %w", id, err)
	}
	return nil
}

// PublishChannel publishes a channel frame on its channel's topic, joined
// or not (a bridge relays frames of channels it does not hold: gossipsub
// then sends to peers subscribed to the topic, its fanout). The frame must
// parse as a channel frame of channel id. It is not passed to Validate.
func (h *Host) PublishChannel(ctx context.Context, id protocol.ChannelID, frame []byte) error {
	g, err := h.gossipOn()
	if err != nil {
		return err
	}
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return fmt.Errorf("p2p: publish on channel %v: %w", id, err)
	}
	if f.Channel != id {
		return fmt.Errorf("p2p: publish on channel %v: frame of channel %v: %w", id, f.Channel, ErrGossipTopic)
	}
	if len(frame) > g.cfg.MaxFrameSize {
		return fmt.Errorf("p2p: publish on channel %v: frame of %d bytes, limit %d: %w", id, len(frame),
			g.cfg.MaxFrameSize, protocol.ErrTooLarge)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	ct, err := g.topicLocked(id)
	if err != nil {
		return err
	}
	// A copy: pubsub keeps the message for a while, the caller's buffer is
	// the caller's.
	err = ct.topic.Publish(ctx, bytes.Clone(frame))
	if ct.sub == nil {
		// Not joined: drop the handle so that relaying for many channels
		// holds no state here (gossipsub keeps its fanout peers for
		// FanoutTTL on its own).
		err = errors.Join(err, g.dropLocked(id, ct))
	}
	if err != nil {
		return fmt.Errorf("p2p: publish on channel %v: %w", id, err)
	}
	return nil
}

// close leaves every channel (their read loops end) and stops pubsub.
func (g *gossip) close() {
	g.mu.Lock()
	g.closed = true
	for id, ct := range g.topics {
		if ct.sub != nil {
			_ = g.leaveLocked(id, ct)
		}
	}
	g.mu.Unlock()
	g.cancel()
}

// ChannelMeshPeers returns how many peers are in this host's gossipsub mesh
// for the channel (0 when not joined or gossip is off).
func (h *Host) ChannelMeshPeers(id protocol.ChannelID) int {
	if h.gossip == nil {
		return 0
	}
	return h.gossip.tracer.meshPeers(ChannelTopic(id))
}

// meshTracer follows gossipsub's mesh per topic from its trace events.
type meshTracer struct {
	mu         sync.Mutex
	mesh       map[string]map[peer.ID]struct{}
	duplicates atomic.Uint64
	filter     *channelTopicFilter // told when gossipsub drops a peer
}

func newMeshTracer(filter *channelTopicFilter) *meshTracer {
	return &meshTracer{mesh: make(map[string]map[peer.ID]struct{}), filter: filter}
}

func (t *meshTracer) meshPeers(topic string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh[topic])
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = make(map[peer.ID]struct{})
	}
	t.mesh[topic][p] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
	if len(t.mesh[topic]) == 0 {
		delete(t.mesh, topic)
	}
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *meshTracer) RemovePeer(p peer.ID) {
	if t.filter != nil {
		t.filter.removePeer(p)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, m := range t.mesh {
		delete(m, p)
		if len(m) == 0 {
			delete(t.mesh, topic)
		}
	}
}

func (t *meshTracer) DuplicateMessage(*pubsub.Message) { t.duplicates.Add(1) }

// The rest of pubsub.RawTracer: not followed.
func (*meshTracer) AddPeer(peer.ID, libp2pproto.ID)                      {}
func (*meshTracer) OnNewOutboundStream(peer.ID, libp2pproto.ID)          {}
func (*meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (*meshTracer) Join(string)                                          {}
func (*meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (*meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (*meshTracer) ThrottlePeer(peer.ID)                                 {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
