package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/p2p"
)

// Broadcast channels on the daemon side. The engine floods channel frames
// on mesh links and asks the daemon (Ready.Publish) to put them on gossip
// for IP peers; what gossip delivers goes back into the engine
// (routing.GossipReceived), which delivers it once and floods it onto mesh
// links. Between gossip and the loop sit two bounded queues, so neither a
// slow gossip publish nor a burst of arrivals can stall the node loop: what
// does not fit is dropped and counted.
//
// Gossip runs the validator below on every frame before it forwards or
// delivers it: the frame must parse, be fresh (the engine's FloodMaxAge and
// ClockSkew), belong to a joined channel and authenticate with its key, and
// its channel and (signed frames) its sender must be within their rate
// limits. Foreign or forged frames die at the first hop.
//
// No limit here depends on the forwarding peer: gossipsub marks a frame's
// ID seen before it validates the frame, so a genuine frame refused
// because of who forwarded it would be lost, the copies honest peers
// deliver later dropped as duplicates. The transport scores peers that
// forward too fast instead (p2p.GossipConfig.PeerRate).

// Freshness bounds of channel frames, given to the engine
// (routing.Config.FloodMaxAge, ClockSkew) and used by the gossip validator,
// so both refuse the same frames.
const (
	floodMaxAge = 30 * time.Minute
	clockSkew   = 10 * time.Minute
)

// Gossip queue sizes.
const (
	gossipInQueue  = 1024 // validated frames waiting for the loop
	gossipOutQueue = 1024 // frames waiting to be published
	gossipTimeout  = 5 * time.Second
)

// Receive-side rate limits (token buckets, golang.org/x/time/rate), after
// authentication, so only genuine frames use up a member's allowance (the
// transport's per-topic limit runs after this validator); the sender limit
// exists only here. Each depends on the frame alone, so a frame gets the
// same verdict whoever delivers it. A
// LoRa link carries a few frames a minute, so every limit is far above
// what a healthy channel needs and far below what a flooding member could
// push into the mesh.
const (
	senderRate, senderBurst   = rate.Limit(5), 30   // per signing sender
	channelRate, channelBurst = rate.Limit(50), 200 // per channel
	maxLimiters               = 4096                // forgotten all at once beyond this
)

// Validator verdicts, counted in chanStats.
var (
	errGossipMalformed = errors.New("daemon: gossip: malformed channel frame")
	errGossipStale     = errors.New("daemon: gossip: stale or future channel frame")
	errGossipUnknown   = errors.New("daemon: gossip: frame of a channel this node has not joined")
	errGossipForged    = errors.New("daemon: gossip: channel frame does not authenticate")
	errGossipLimited   = errors.New("daemon: gossip: rate limit exceeded")
)

// chanStats are the channel counters (metrics). They never hold keys.
type chanStats struct {
	published, publishFailed, outDropped atomic.Uint64
	delivered, inDropped                 atomic.Uint64
	malformed, stale, unknown, forged    atomic.Uint64
	limited                              atomic.Uint64
}

// channels is the registry of joined channels and the gossip plumbing. The
// registry is read by gossip goroutines (the validator) and written by the
// node loop; everything here is safe for concurrent use.
type channels struct {
	now         func() time.Time
	maxAge      time.Duration
	skew        time.Duration
	historySize int

	mu     sync.RWMutex
	joined map[protocol.ChannelID]store.Channel
	// fapp holds the keys of the FAPP channels the node follows (public,
	// derived keys; see fapp_channels.go). They are not listed as joined
	// channels and keep no history.
	fapp map[protocol.ChannelID]protocol.ChannelKey

	limMu   sync.Mutex
	senders map[string]*rate.Limiter
	perChan map[protocol.ChannelID]*rate.Limiter

	in    chan []byte
	out   chan routing.Publish
	stats chanStats
	// verdicts, if set (tests), receives every validator verdict.
	verdicts atomic.Pointer[chan error]
}

func newChannels(now func() time.Time, historySize int) *channels {
	return &channels{
		now: now, maxAge: floodMaxAge, skew: clockSkew, historySize: historySize,
		joined:  map[protocol.ChannelID]store.Channel{},
		fapp:    map[protocol.ChannelID]protocol.ChannelKey{},
		senders: map[string]*rate.Limiter{}, perChan: map[protocol.ChannelID]*rate.Limiter{},
		in: make(chan []byte, gossipInQueue), out: make(chan routing.Publish, gossipOutQueue),
	}
}

func (c *channels) put(ch store.Channel) {
	c.mu.Lock()
	c.joined[ch.ID()] = ch
	c.mu.Unlock()
}

func (c *channels) remove(id protocol.ChannelID) {
	c.mu.Lock()
	delete(c.joined, id)
	c.mu.Unlock()
}

func (c *channels) get(id protocol.ChannelID) (store.Channel, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, ok := c.joined[id]
	return ch, ok
}

// list returns the joined channels in ID order.
func (c *channels) list() []store.Channel {
	c.mu.RLock()
	out := make([]store.Channel, 0, len(c.joined))
	for _, ch := range c.joined {
		out = append(out, ch)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Channel) int {
		x, y := a.ID(), b.ID()
		return strings.Compare(string(x[:]), string(y[:]))
	})
	return out
}

// resolve finds a joined channel by ID (8 hex characters) or name.
func (c *channels) resolve(ref string) (store.Channel, error) {
	var found []store.Channel
	for _, ch := range c.list() {
		if ch.ID().String() == strings.ToLower(ref) {
			return ch, nil
		}
		if ch.Name == ref {
			found = append(found, ch)
		}
	}
	switch len(found) {
	case 0:
		return store.Channel{}, fmt.Errorf("%w: no joined channel has the ID or name %q (see channel.list)", rpcapi.ErrNotJoined, ref)
	case 1:
		return found[0], nil
	}
	return store.Channel{}, fmt.Errorf("%w: %d joined channels are named %q: name it by its ID", rpcapi.ErrInvalidParams, len(found), ref)
}

// validate is gossip's validator (p2p.GossipConfig.Validate): cheap checks
// first, then the MAC, then the rate limits, so that neither junk nor
// forgeries use up a member's allowance. The forwarding peer is not looked
// at: a frame's verdict must not depend on who delivered it.
func (c *channels) validate(_ peer.ID, frame []byte) error {
	err := c.check(frame)
	if v := c.verdicts.Load(); v != nil {
		*v <- err
	}
	return err
}

func (c *channels) check(frame []byte) error {
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		c.stats.malformed.Add(1)
		return fmt.Errorf("%w: %v", errGossipMalformed, err)
	}
	now := c.now()
	if err := f.CheckFresh(now, c.maxAge, c.skew); err != nil {
		c.stats.stale.Add(1)
		// Wraps protocol.ErrExpired or ErrFromFuture: gossip ignores the
		// frame without blaming the peer (a clock may be off).
		return fmt.Errorf("%w: %w", errGossipStale, err)
	}
	ch, ok := c.get(f.Channel)
	if !ok {
		ch.Key, ok = c.fappKey(f.Channel)
	}
	if !ok {
		c.stats.unknown.Add(1)
		// A channel this node just left is not the forwarder's fault:
		// wrapping protocol.ErrNotForUs makes gossip ignore, not reject.
		return fmt.Errorf("%w: %w", errGossipUnknown, protocol.ErrNotForUs)
	}
	m, err := f.Open(ch.Key)
	if err != nil {
		c.stats.forged.Add(1)
		// Ignored, not rejected: a bridge that does not hold the key
		// publishes every well-formed frame heard on a mesh link, so a
		// penalty would let anyone on the mesh side who knows a channel ID
		// graylist the bridge (TestGossipBridgeForgeriesNoPenalty). The
		// frame still dies here.
		return fmt.Errorf("%w: %w: %v", errGossipForged, p2p.ErrGossipIgnore, err)
	}
	sender := ""
	if m.Signed {
		sender = m.From.String()
	}
	if !c.allow(now, f.Channel, sender) {
		c.stats.limited.Add(1)
		// Over a limit is not proof of malice (the forwarder may relay a
		// noisy member): gossip ignores the frame without a penalty.
		return fmt.Errorf("%w: %w", errGossipLimited, p2p.ErrGossipIgnore)
	}
	return nil
}

// allow takes one token from the sender's (signed frames) and the
// channel's buckets; a frame over either limit takes none. The forwarding
// peer plays no part (see the top of this file).
func (c *channels) allow(now time.Time, id protocol.ChannelID, sender string) bool {
	c.limMu.Lock()
	defer c.limMu.Unlock()
	if len(c.senders) > maxLimiters {
		clear(c.senders)
	}
	if len(c.perChan) > maxLimiters {
		clear(c.perChan)
	}
	lims := []*rate.Limiter{limiter(c.perChan, id, channelRate, channelBurst)}
	if sender != "" {
		lims = append(lims, limiter(c.senders, sender, senderRate, senderBurst))
	}
	rs := make([]*rate.Reservation, 0, len(lims))
	for _, l := range lims {
		r := l.ReserveN(now, 1)
		if !r.OK() || r.DelayFrom(now) > 0 {
			r.CancelAt(now)
			for _, prev := range rs {
				prev.CancelAt(now)
			}
			return false
		}
		rs = append(rs, r)
	}
	return true
}

func limiter[K comparable](m map[K]*rate.Limiter, k K, r rate.Limit, burst int) *rate.Limiter {
	l := m[k]
	if l == nil {
		l = rate.NewLimiter(r, burst)
		m[k] = l
	}
	return l
}

// deliver is gossip's Deliver: it hands a validated frame to the loop
// without blocking (a full queue drops and counts).
func (c *channels) deliver(frame []byte) {
	select {
	case c.in <- frame: // gossip hands the frame over
	default:
		c.stats.inDropped.Add(1)
	}
}

// queuePublish hands an engine Publish to the publisher goroutine without
// blocking the loop.
func (c *channels) queuePublish(p routing.Publish) {
	select {
	case c.out <- p:
	default:
		c.stats.outDropped.Add(1)
	}
}
