package radio

import (
	"fmt"
	"math"
	"strconv"
)

// Fading selects the per-frame small-scale fading of a [Medium]: on top of
// a link's mean loss and static shadowing, every frame at every receiver
// gets its own power gain, drawn afresh (the channel changes between
// frames but not within one, the usual block-fading assumption for frames
// shorter than the coherence time).
type Fading int

const (
	// NoFading: every frame of a link arrives at the same power. The
	// default.
	NoFading Fading = iota
	// Rayleigh: no line of sight; the power gain is exponential with mean
	// 1 (0 dB), so 10 % of frames arrive 10 dB or more below the mean.
	Rayleigh
	// Rician: a line-of-sight component K times stronger than the
	// scattered ones ([WithFading]'s K factor); mean power gain 1.
	Rician
)

var fadingNames = [...]string{"none", "rayleigh", "rician"}

// String returns "none", "rayleigh" or "rician".
func (f Fading) String() string {
	if f < 0 || int(f) >= len(fadingNames) {
		return "Fading(" + strconv.Itoa(int(f)) + ")"
	}
	return fadingNames[f]
}

// ParseFading returns the fading named s.
func ParseFading(s string) (Fading, error) {
	for i, n := range fadingNames {
		if n == s {
			return Fading(i), nil
		}
	}
	return 0, fmt.Errorf("%w: fading %q is not none, rayleigh or rician", ErrInvalidModel, s)
}

// FadeClipDB bounds a fade's gain: a Rayleigh gain exceeds +10 dB with
// probability e^-10 (4.5e-5). As with shadowing, the bound keeps the
// medium's reach lists finite; draws above it are moved to it.
const FadeClipDB = 10

// WithFading turns on per-frame fading of the given kind; kDB is the Rician
// K factor in dB (ignored otherwise). Fading widens every reach list by
// FadeClipDB, which costs build time and memory.
func WithFading(kind Fading, kDB float64) Option {
	return func(c *mediumConfig) { c.fading, c.ricianK = kind, math.Pow(10, kDB/10) }
}

// fadeMaxDB is the largest gain per-frame fading can add to a link.
func (m *Medium) fadeMaxDB() float64 {
	if m.cfg.fading == NoFading {
		return 0
	}
	return FadeClipDB
}

// fadeDB returns the fading gain in dB of transmission id at receiver r: a
// hash of the medium's fading key, the transmission and the receiver, so
// that it does not depend on the order in which outcomes are asked for.
func (m *Medium) fadeDB(id TxID, r NodeID) float64 {
	if m.cfg.fading == NoFading {
		return 0
	}
	h := splitmix64(m.fadeKey ^ splitmix64(splitmix64(uint64(id))^uint64(uint32(r))))
	u1 := (float64(h>>11) + 0.5) / (1 << 53)
	var g float64
	if m.cfg.fading == Rayleigh {
		g = -math.Log(u1) // |CN(0,1)|^2: exponential, mean 1
	} else {
		h2 := splitmix64(h)
		u2 := (float64(h2>>11) + 0.5) / (1 << 53)
		// Box-Muller: two independent N(0, 1/2), the scattered part.
		rad := math.Sqrt(-math.Log(u1))
		x, y := rad*math.Cos(2*math.Pi*u2), rad*math.Sin(2*math.Pi*u2)
		k := m.cfg.ricianK
		los := math.Sqrt(k / (k + 1))
		sc := math.Sqrt(1 / (k + 1))
		re, im := los+sc*x, sc*y
		g = re*re + im*im
	}
	return min(10*math.Log10(g), FadeClipDB)
}

// CaptureThresholdDB returns the medium's same-channel capture threshold.
func (m *Medium) CaptureThresholdDB() float64 { return m.cfg.capture }

// Hears reports whether candidate r of transmission id receives it at or
// above the receive threshold (fading included), for carrier sense: with
// fading or the error curve the candidates are a superset of such
// receivers. Without them every candidate hears it, at no cost.
func (m *Medium) Hears(id TxID, r NodeID) bool {
	if m.cfg.fading == NoFading && !m.cfg.curve {
		return true
	}
	t := m.rec(id)
	if t == nil || r < 0 || int(r) >= len(m.nodes) {
		return false
	}
	return m.rxPower(t.node, r)+m.fadeDB(id, r) >= m.classes[t.cls].threshold
}
