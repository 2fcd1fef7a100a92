package p2p

import (
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Flood scoring: a peer that is first to hand this host more valid frames
// than GossipConfig.PeerRate allows loses score, not frames.
const (
	// gossipFloodWeight is the application-specific score (P5) of one
	// frame over the peer's rate. With gossipFloodDecay, a peer 25
	// frames a second over its rate sinks below the gossip threshold
	// (-10) in about 4 s, below the publish threshold (-50) in about 20 s
	// and below the graylist threshold (-80) in about 35 s (first-delivery
	// credit, at most +10, delays each by a few seconds); a burst of a
	// few dozen frames over the rate is forgiven.
	gossipFloodWeight = -0.1
	// gossipFloodDecay is how long a count takes to decay to 1 % (like
	// the invalid-frame and behaviour penalties).
	gossipFloodDecay = 10 * time.Minute
	// gossipFloodForget is the count below which a peer's entry may be
	// dropped when the table is full (it is worth less than 0.01 points).
	gossipFloodForget = 0.1
)

// floodTau is the time constant of the decay: exp(-decay/tau) = 1 %.
var floodTau = gossipFloodDecay.Seconds() / math.Log(100)

// floodCount is a peer's decayed count as of at.
type floodCount struct {
	n  float64
	at time.Time
}

// floodCounts holds the frames over each peer's rate, decaying
// exponentially, for at most gossipMaxLimiters peers. The caller
// serializes calls.
type floodCounts struct {
	m map[peer.ID]floodCount
}

func newFloodCounts() *floodCounts { return &floodCounts{m: make(map[peer.ID]floodCount)} }

// decayed returns c's count at now.
func (c floodCount) decayed(now time.Time) float64 {
	dt := now.Sub(c.at).Seconds()
	if dt <= 0 {
		return c.n
	}
	return c.n * math.Exp(-dt/floodTau)
}

// add counts one frame of p over its rate at now.
func (f *floodCounts) add(p peer.ID, now time.Time) {
	c, ok := f.m[p]
	if !ok && len(f.m) >= gossipMaxLimiters {
		f.prune(now)
	}
	f.m[p] = floodCount{n: c.decayed(now) + 1, at: now}
}

// get returns p's count at now.
func (f *floodCounts) get(p peer.ID, now time.Time) float64 { return f.m[p].decayed(now) }

// prune drops the counts that have decayed to nothing; if none has, it
// drops the smallest, so that many new flooding peers cannot wash a
// heavy flooder's count clean.
func (f *floodCounts) prune(now time.Time) {
	var low peer.ID
	lowN := math.Inf(1)
	for p, c := range f.m {
		n := c.decayed(now)
		if n < gossipFloodForget {
			delete(f.m, p)
			continue
		}
		if n < lowN {
			low, lowN = p, n
		}
	}
	if len(f.m) >= gossipMaxLimiters {
		delete(f.m, low)
	}
}
