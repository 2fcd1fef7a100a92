package radio

import (
	"math"
	"math/rand/v2"
)

// ShadowClipSigmas bounds per-link shadowing to +-4 sigma (+-14.28 dB with
// the default sigma). Without a bound every pair of nodes, however far
// apart, could be linked by an unlucky draw, and a medium would have to
// examine all N^2 pairs; with it, pairs beyond a computable distance are
// out of reach. A normal deviate exceeds 4 sigma with probability 6.3e-5,
// and the bound moves such draws to 4 sigma, not to zero.
const ShadowClipSigmas = 4

// LinkShadowing gives every unordered pair of nodes one static shadowing
// value, X_sigma in [PathLoss], the same in both directions and for the
// whole run, as network simulators usually do (the obstacles between two
// fixed nodes do not move).
//
// The values are not a stream of draws: they are a hash of a 64-bit key,
// drawn once from the caller's generator, and the pair, turned into a
// normal deviate (inverse CDF) and clipped to +-[ShadowClipSigmas] sigma.
// So the value of a link does not depend on which links were asked about
// before it, and a topology builder and the medium built from the same key
// agree on every link.
type LinkShadowing struct {
	key   uint64
	sigma float64
}

// NewLinkShadowing draws a key from rng and returns the shadowing with
// standard deviation sigmaDB. A sigma of 0 (or less) gives no shadowing and
// draws nothing; rng may then be nil.
func NewLinkShadowing(rng *rand.Rand, sigmaDB float64) LinkShadowing {
	if !(sigmaDB > 0) {
		return LinkShadowing{}
	}
	return LinkShadowing{key: rng.Uint64(), sigma: sigmaDB}
}

// SigmaDB returns the standard deviation.
func (s LinkShadowing) SigmaDB() float64 { return s.sigma }

// DB returns the shadowing of the link between a and b in dB, a positive
// value being extra loss. DB(a, b) == DB(b, a); DB(a, a) is 0.
func (s LinkShadowing) DB(a, b NodeID) float64 {
	if s.sigma == 0 || a == b {
		return 0
	}
	if a > b {
		a, b = b, a
	}
	pair := uint64(uint32(a))<<32 | uint64(uint32(b))
	h := splitmix64(s.key ^ splitmix64(pair))
	// u uniform in (0, 1) on 53 bits, z = Phi^-1(u) = sqrt(2) erfinv(2u - 1):
	// the inverse normal CDF needs no logarithm for 85 % of draws, unlike
	// Box-Muller, and the medium computes thousands of links per node.
	u := (float64(h>>11) + 0.5) / (1 << 53)
	z := math.Sqrt2 * math.Erfinv(2*u-1)
	z = max(-ShadowClipSigmas, min(ShadowClipSigmas, z))
	return z * s.sigma
}

// MaxDB returns the largest magnitude DB can return.
func (s LinkShadowing) MaxDB() float64 { return ShadowClipSigmas * s.sigma }

// splitmix64 is the finaliser of Steele, Lea and Flood's SplitMix64: a
// bijective 64-bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
