package p2p

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"meshd.dev/meshd/protocol"
)

// Gossip defaults and limits; transports/README.md (section Gossip)
// explains the choices.
const (
	// DefaultGossipSeenTTL is how long gossipsub remembers message IDs:
	// the routing engine's default freshness bound (30 min) plus its clock
	// skew (10 min), the longest a frame can be accepted.
	DefaultGossipSeenTTL = 40 * time.Minute
	// DefaultGossipPeerRate and DefaultGossipPeerBurst are the valid
	// frames per second (and the burst) one peer may be first to hand
	// this host, all channels together; frames beyond them are still
	// accepted, but count against the peer's score (gossipFloodWeight).
	DefaultGossipPeerRate  = 25
	DefaultGossipPeerBurst = 100
	// DefaultGossipTopicRate and DefaultGossipTopicBurst bound the valid
	// frames per second (and the burst) one channel may bring in from all peers
	// together, so that one noisy channel cannot take all of what the node
	// floods onward (a LoRa link's airtime).
	DefaultGossipTopicRate  = 10
	DefaultGossipTopicBurst = 50

	// gossipMaxRPCSize bounds one gossipsub RPC: twice a largest channel
	// frame, room for the protobuf framing, the topic and control messages
	// next to a frame (gossipsub splits larger batches it sends).
	gossipMaxRPCSize = 2 * protocol.MaxChannelFrameSize
	// gossipMaxTopicsPerRPC bounds the subscriptions one RPC may announce.
	gossipMaxTopicsPerRPC = 256
	// gossipMaxTopicsPerPeer bounds the topics one peer may be subscribed
	// to in this host's view; further subscriptions are ignored.
	gossipMaxTopicsPerPeer = 512
	// gossipSubBuffer is the queue of a channel subscription: frames wait
	// here for Deliver; beyond it gossipsub drops frames for this reader.
	gossipSubBuffer = 256
	// gossipMaxLimiters bounds the per-peer and per-channel rate limiters
	// kept (beyond it idle, full limiters are dropped) and the per-peer
	// flood counts (beyond it decayed or the smallest are dropped).
	gossipMaxLimiters = 1024
	// gossipScoreInspectPeriod is how often the peer scores are copied out
	// of gossipsub for GossipPeerScore.
	gossipScoreInspectPeriod = time.Second
)

// Peer score thresholds (gossipsub v1.1). A peer below gossipThreshold
// gets no gossip (IHAVE/IWANT) from this host and its gossip is ignored;
// below publishThreshold this host does not flood-publish to it; below
// graylistThreshold every RPC from it is ignored.
const (
	gossipThreshold   = -10
	publishThreshold  = -50
	graylistThreshold = -80
)

// gossipScoreParams are the peer score parameters. What counts against a
// peer:
//   - P4, invalid frames (rejected by the validator: malformed, on another
//     channel's topic, or whatever GossipConfig.Validate rejects; the
//     daemon ignores a bad MAC, which a bridge relays unknowingly):
//     -1 x (count)^2, the count
//     decaying to 1 % in 10 minutes. About 3 invalid frames are forgiven
//     (a bridge relays frames of channels it cannot check), 4 stop gossip
//     to the peer, 8 stop publishing to it and 9 graylist it.
//   - P6, IP colocation: beyond 8 peers from one IP address each gets
//     -2 x (surplus)^2, so 11 peers behind one address lose gossip and 14
//     are not published to; loopback is exempt (local tools and tests).
//   - P7, protocol misbehaviour gossipsub detects itself (GRAFT during
//     backoff, broken IWANT promises): -1 x (count beyond 6)^2, decaying to
//     1 % in 10 minutes.
//   - P5, the application score: frames over the peer's rate
//     (GossipConfig.PeerRate), gossipFloodWeight (-0.1) each, decaying
//     to 1 % in 10 minutes (gossip_flood.go).
//
// What counts for a peer, capped at +20 (TopicScoreCap) so that credit
// cannot buy room for invalid frames: time in the mesh (P1, +0.01 a
// second, at most +3) and first deliveries of valid frames (P2, +0.5 each,
// at most +10, decaying in 10 minutes). Mesh delivery deficits (P3, P3b)
// are off: channels are quiet for hours and a quiet mesh peer is not a bad
// one. Scores are kept 10 minutes after a peer leaves, so reconnecting
// does not wash a score clean.
func gossipScoreParams(app func(peer.ID) float64) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:               20,
		AppSpecificScore:            app,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -2,
		IPColocationFactorThreshold: 8,
		IPColocationFactorWhitelist: loopbackNets(),
		BehaviourPenaltyWeight:      -1,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		RetainScore:                 10 * time.Minute,
	}
}

// channelTopicScoreParams are the per-channel parameters (see
// gossipScoreParams).
func channelTopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  300,
		FirstMessageDeliveriesWeight:   0.5,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: -1,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
	}
}

func gossipThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           10, // peer exchange is off anyway
		OpportunisticGraftThreshold: 1,
	}
}

func loopbackNets() []*net.IPNet {
	return []*net.IPNet{
		{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
		{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
	}
}

// gossipParams are gossipsub's mesh parameters: the defaults (D 6, Dlo 5,
// Dhi 12, Dlazy 6), and in relay mode a wider mesh (D 12, Dlo 8, Dhi 24,
// Dlazy 12): a relay is public and well connected, and carries the
// traffic of hosts behind NAT.
func gossipParams(relay bool) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	if relay {
		p.D, p.Dlo, p.Dhi, p.Dlazy = 12, 8, 24, 12
	}
	return p
}

// limiters is a bounded set of token buckets keyed by K.
type limiters[K comparable] struct {
	limit rate.Limit
	burst int
	m     map[K]*rate.Limiter
}

func newLimiters[K comparable](limit rate.Limit, burst int) *limiters[K] {
	return &limiters[K]{limit: limit, burst: burst, m: make(map[K]*rate.Limiter)}
}

// allow takes a token for k at now. The caller serializes calls.
func (l *limiters[K]) allow(k K, now time.Time) bool {
	lim := l.m[k]
	if lim == nil {
		if len(l.m) >= gossipMaxLimiters {
			l.prune(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[k] = lim
	}
	return lim.AllowN(now, 1)
}

// prune drops the limiters that are full again (idle keys): forgetting
// them changes nothing. If every one is busy it drops them all, which at
// worst grants each key one extra burst.
func (l *limiters[K]) prune(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
		}
	}
	if len(l.m) >= gossipMaxLimiters {
		clear(l.m)
	}
}
