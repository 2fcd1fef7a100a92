package radio

import (
	"fmt"
	"math"
	"time"
)

// CurveMarginDB is how far below the datasheet's SNR floor the packet-error
// curve ([WithErrorCurve]) is still evaluated; below it a frame is lost.
// There the curve loses at least 98.8 % of 1-byte frames at every SF.
const CurveMarginDB = 5

// PacketErrorRate returns the probability that a frame with parameters p
// and an n-byte payload is lost at snrDB, from the closed-form bit error
// rate of LoRa in additive white Gaussian noise of Elshabrawy and Robert
// ("Closed-form approximation of LoRa modulation BER performance", IEEE
// Communications Letters 22(9), 2018):
//
//	BER = 0.5 Q( sqrt(2^(SF+1) SNR) - sqrt(1.386 SF + 1.154) )
//
// and independent bit errors over the frame's bits (payload, 16 CRC bits,
// 20 header bits), without the Hamming code's corrections. The curve falls
// from 50 % to 1 % within about 1.5 dB; its 50 % point for 20 bytes lies
// 1.4 dB (SF7) to 2.7 dB (SF12) below the datasheet's SNR floor.
func PacketErrorRate(p Params, n int, snrDB float64) float64 {
	g := math.Pow(10, snrDB/10)
	x := math.Sqrt(math.Exp2(float64(p.SF+1))*g) - math.Sqrt(1.386*float64(p.SF)+1.154)
	ber := 0.25 * math.Erfc(x/math.Sqrt2) // 0.5 Q(x)
	bits := 8 * n
	if p.CRC {
		bits += 16
	}
	if p.ExplicitHeader {
		bits += 20
	}
	bits = max(bits, 8)
	return -math.Expm1(float64(bits) * math.Log1p(-ber))
}

// WithErrorCurve replaces the hard SNR floor by [PacketErrorRate]: a frame
// above the sensitivity is lost with the curve's probability at its SNR
// (drawn per frame and receiver from the medium's generator), and frames
// down to CurveMarginDB below the floor may get through.
func WithErrorCurve() Option { return func(c *mediumConfig) { c.curve = true } }

// WithSummedInterference judges a frame against the sum of the powers of
// all the transmissions overlapping it (each weighted by its capture or
// rejection threshold) instead of against each one alone: n equal
// interferers weigh 10 log10(n) dB more than one.
func WithSummedInterference() Option { return func(c *mediumConfig) { c.sum = true } }

// RejectionMatrix gives, for a frame at spreading factor i (row, SF7..SF12)
// and an interferer at j (column), the signal-to-interference ratio in dB
// the frame needs to survive. The diagonal is replaced by the medium's
// capture threshold.
type RejectionMatrix [6][6]float64

// CroceRejection is the matrix Croce et al. measured with an SX1272 and
// simulated ("Impact of LoRa imperfect orthogonality: analysis of
// link-level performance", IEEE Communications Letters 22(4), 2018).
func CroceRejection() *RejectionMatrix {
	return &RejectionMatrix{
		{1, -8, -9, -9, -9, -9},
		{-11, 1, -11, -12, -13, -13},
		{-15, -13, 1, -13, -14, -15},
		{-19, -18, -17, 1, -17, -18},
		{-22, -22, -21, -20, 1, -20},
		{-25, -25, -25, -24, -23, 1},
	}
}

// GoursaudRejection is the co-channel rejection Goursaud and Gorce derived
// ("Dedicated networks for IoT: PHY/MAC state of the art and challenges",
// EAI Endorsed Transactions on IoT, 2015), as ns-3's lorawan module uses
// it.
func GoursaudRejection() *RejectionMatrix {
	return &RejectionMatrix{
		{6, -16, -18, -19, -19, -20},
		{-24, 6, -20, -22, -22, -22},
		{-27, -27, 6, -23, -25, -25},
		{-30, -30, -30, 6, -26, -28},
		{-33, -33, -33, -33, 6, -29},
		{-36, -36, -36, -36, -36, 6},
	}
}

// WithSFRejection makes frames of different spreading factors (same
// frequency and bandwidth) interfere: a frame survives an interferer of
// another SF if it is at least the matrix's entry above it. Without it
// (the default) spreading factors are perfectly orthogonal. SF6 frames use
// the SF7 row and column.
func WithSFRejection(mat *RejectionMatrix) Option {
	return func(c *mediumConfig) {
		if mat != nil {
			cp := *mat
			c.rejection = &cp
		}
	}
}

// WithCaptureWindow lets a frame that arrives while the receiver is locked
// on an earlier one take the receiver over if it starts within the first
// symbols symbols of the earlier frame's preamble and is stronger by the
// capture threshold: the receiver has not yet synchronised. Measurements
// (Bor et al. 2016; Rahmadhani and Kuipers, "When LoRaWAN frames collide",
// WiNTECH 2018) show capture of a later, stronger frame during the first
// frame's preamble; preamble - 5 symbols (the start of the critical
// section LoRaSim assumes) is the usual figure. 0 (the default) keeps the
// receiver locked on the first frame; [WithLaterCapture] is an unlimited
// window.
func WithCaptureWindow(symbols float64) Option {
	return func(c *mediumConfig) { c.window = symbols }
}

// WithTurnaround makes a radio deaf for d after each of its transmissions:
// the time the SX127x and its host need to switch from sending back to
// receiving. (The switch the other way delays the start of a transmission,
// which the scheduler decides.)
func WithTurnaround(d time.Duration) Option { return func(c *mediumConfig) { c.turnaround = d } }

// rejectionDB is the SIR frame f needs against interferer t.
func (m *Medium) rejectionDB(f, t *txRec) float64 {
	if f.cls == t.cls || m.cfg.rejection == nil {
		return m.cfg.capture
	}
	i, j := max(f.p.SF, 7)-7, max(t.p.SF, 7)-7
	if i == j {
		return m.cfg.capture
	}
	return m.cfg.rejection[i][j]
}

// survivesCurve draws whether f, received at snrDB at r, survives the
// packet-error curve.
func (m *Medium) survivesCurve(f *txRec, r NodeID, snrDB float64) bool {
	h := splitmix64(m.curveKey ^ splitmix64(splitmix64(uint64(f.id))^uint64(uint32(r))))
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return u >= PacketErrorRate(f.p, f.size, snrDB)
}

// validateReception reports unusable reception settings.
func (c *mediumConfig) validateReception() error {
	switch {
	case c.fading < NoFading || c.fading > Rician:
		return fmt.Errorf("%w: fading %d is not none, rayleigh or rician", ErrInvalidModel, int(c.fading))
	case !(c.ricianK >= 0) || !finite(c.ricianK):
		return fmt.Errorf("%w: Rician K factor %v is not a number", ErrInvalidModel, c.ricianK)
	case !(c.window >= 0) || !finite(c.window):
		return fmt.Errorf("%w: capture window %v symbols must be zero or positive", ErrInvalidModel, c.window)
	case c.turnaround < 0:
		return fmt.Errorf("%w: turnaround %v is negative", ErrInvalidModel, c.turnaround)
	}
	if c.rejection != nil {
		for i, row := range c.rejection {
			for j, v := range row {
				if !finite(v) {
					return fmt.Errorf("%w: rejection matrix entry [%d][%d] %v is not a number", ErrInvalidModel, i, j, v)
				}
			}
		}
	}
	return nil
}

// PreambleHeard reports whether receiver r, listening with parameters p on
// freqHz during [from, to), had the preamble of a transmission on that
// channel overlapping the interval at thresholdDBm or more: what a
// channel-activity detection (CAD) of the SX127x sees, which detects
// preamble chirps only (a frame already past its preamble goes unnoticed).
// Ask by to, before the medium's clock passes it by the retention.
func (m *Medium) PreambleHeard(r NodeID, from, to time.Time, freqHz int64, p Params, thresholdDBm float64) (bool, error) {
	if err := m.checkNode(r); err != nil {
		return false, err
	}
	if err := p.Validate(); err != nil {
		return false, err
	}
	k := classIndex(p)
	c := m.class(k)
	a, b := m.offset(from), m.offset(to)
	nodes, _ := c.inOf(r)
	for _, s := range nodes {
		lt := m.last[s]
		if s == r || lt.end <= a {
			continue
		}
		for t := m.rec(lt.id); t != nil && t.end > a; t = m.rec(t.prev) {
			if t.cls != k || t.freq != freqHz || t.start >= b || t.preEnd <= a {
				continue
			}
			if m.rxPower(s, r)+m.fadeDB(t.id, r) >= thresholdDBm {
				return true, nil
			}
		}
	}
	return false, nil
}

// ThresholdDBm returns the weakest power at which the medium receives (or,
// with the error curve, starts to consider) frames with parameters p.
func (m *Medium) ThresholdDBm(p Params) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	return m.class(classIndex(p)).threshold, nil
}
