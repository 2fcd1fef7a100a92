package radio

import (
	"fmt"
	"math"
)

// PathLoss is the log-distance path-loss model with log-normal shadowing:
//
//	PL(d) = PL(d0) + 10 n log10(d / d0) + X_sigma
//
// X_sigma is a zero-mean normal deviate with standard deviation
// ShadowSigmaDB, drawn per link (see [LinkShadowing]). Distances shorter than
// d0 get the loss at d0, as ns-3's LogDistancePropagationLossModel does: the
// reference loss is a measured urban figure that the formula would turn
// into a gain at short range.
type PathLoss struct {
	// RefLossDB is PL(d0), the mean loss at the reference distance, in dB.
	RefLossDB float64
	// RefDistanceM is d0, in metres.
	RefDistanceM float64
	// Exponent is n, the path-loss exponent.
	Exponent float64
	// ShadowSigmaDB is the standard deviation of the shadowing, in dB; 0
	// turns shadowing off.
	ShadowSigmaDB float64

	// Kind selects the formula; the zero value is log-distance, which
	// uses the three fields above. The other models (see [PathLossKind])
	// use the fields below and ignore RefLossDB, RefDistanceM and Exponent.
	Kind PathLossKind
	// FrequencyMHz is the carrier the other models use (0: 868.1 MHz).
	FrequencyMHz float64
	// Environment is the Hata models' terrain class.
	Environment Environment
	// DefaultHeightM is the antenna height of a node whose Device gives
	// none (0: [DefaultAntennaHeightM]).
	DefaultHeightM float64
}

// DefaultPathLoss returns the model of Bor et al. ("Do LoRa low-power
// wide-area networks scale?", 2016), the one LoRaSim and ns-3's lorawan
// module use: 127.41 dB at 40 m, exponent 2.08, shadowing sigma 3.57 dB.
func DefaultPathLoss() PathLoss {
	return PathLoss{RefLossDB: 127.41, RefDistanceM: 40, Exponent: 2.08, ShadowSigmaDB: 3.57}
}

// Validate reports an unusable model, naming the field.
func (pl PathLoss) Validate() error {
	if err := pl.validateKind(); err != nil {
		return err
	}
	if pl.Kind != LogDistance {
		if !(pl.ShadowSigmaDB >= 0) || !finite(pl.ShadowSigmaDB) {
			return fmt.Errorf("%w: PathLoss.ShadowSigmaDB %v must be zero or positive", ErrInvalidModel, pl.ShadowSigmaDB)
		}
		return nil
	}
	switch {
	case !finite(pl.RefLossDB):
		return fmt.Errorf("%w: PathLoss.RefLossDB %v is not a number", ErrInvalidModel, pl.RefLossDB)
	case !(pl.RefDistanceM > 0) || !finite(pl.RefDistanceM):
		return fmt.Errorf("%w: PathLoss.RefDistanceM %v must be positive", ErrInvalidModel, pl.RefDistanceM)
	case !(pl.Exponent > 0) || !finite(pl.Exponent):
		return fmt.Errorf("%w: PathLoss.Exponent %v must be positive", ErrInvalidModel, pl.Exponent)
	case !(pl.ShadowSigmaDB >= 0) || !finite(pl.ShadowSigmaDB):
		return fmt.Errorf("%w: PathLoss.ShadowSigmaDB %v must be zero or positive", ErrInvalidModel, pl.ShadowSigmaDB)
	}
	return nil
}

// MeanLossDB returns the mean path loss at a distance in metres, without
// shadowing, between antennas at the default height (see [PathLoss.LossDB]).
func (pl PathLoss) MeanLossDB(distanceM float64) float64 {
	if pl.Kind != LogDistance {
		return pl.LossDB(distanceM, 0, 0)
	}
	if !(distanceM > pl.RefDistanceM) {
		return pl.RefLossDB
	}
	return pl.RefLossDB + 10*pl.Exponent*math.Log10(distanceM/pl.RefDistanceM)
}

// DistanceM inverts MeanLossDB: the distance in metres at which the mean
// loss is lossDB. Losses at or below PL(d0) give d0. For the other models,
// see [PathLoss.DistanceAtLossM] at the default height.
func (pl PathLoss) DistanceM(lossDB float64) float64 {
	if pl.Kind != LogDistance {
		return pl.DistanceAtLossM(lossDB, 0, 0)
	}
	if !(lossDB > pl.RefLossDB) {
		return pl.RefDistanceM
	}
	return pl.RefDistanceM * math.Pow(10, (lossDB-pl.RefLossDB)/(10*pl.Exponent))
}

// Device is a node's radio hardware as the link budget sees it.
type Device struct {
	// TxPowerDBm is the conducted transmit power in dBm (14 dBm is the
	// 25 mW e.r.p. limit of most EU868 sub-bands with a 0 dBi antenna,
	// about 2.15 dB less with a dipole's gain counted).
	TxPowerDBm float64
	// GainDBi is the antenna gain minus cable losses, in dBi, counted both
	// when sending and when receiving.
	GainDBi float64
	// HeightM is the antenna's height above ground in metres, for the
	// models that use it (0: the model's default height).
	HeightM float64
}

// Validate reports a device with a non-finite power or gain.
func (d Device) Validate() error {
	if !finite(d.TxPowerDBm) || !finite(d.GainDBi) {
		return fmt.Errorf("%w: TxPowerDBm %v and GainDBi %v must be numbers", ErrInvalidNode, d.TxPowerDBm, d.GainDBi)
	}
	if !(d.HeightM >= 0) || !finite(d.HeightM) {
		return fmt.Errorf("%w: HeightM %v must be zero or positive", ErrInvalidNode, d.HeightM)
	}
	return nil
}

// Receiver sensitivity at 125 kHz (SX1272 datasheet) and the demodulation
// SNR floor (SX1276 datasheet), by spreading factor. The SF6 row is the
// SX1272/SX1276 datasheet figure as remembered (-118 dBm, -5 dB) and should be checked before SF6 results are
// published.
var (
	sensitivity125 = [MaxSF + 1]float64{6: -118, 7: -124, 8: -127, 9: -130, 10: -133, 11: -135, 12: -137}
	snrFloor       = [MaxSF + 1]float64{6: -5, 7: -7.5, 8: -10, 9: -12.5, 10: -15, 11: -17.5, 12: -20}
)

// DefaultNoiseFigureDB is the receiver noise figure the models assume.
const DefaultNoiseFigureDB = 6

// SensitivityDBm returns the receiver sensitivity for p's SF and bandwidth:
// the SX1272 figure at 125 kHz plus 10 log10(BW / 125 kHz). It returns NaN
// for invalid parameters.
func (p Params) SensitivityDBm() float64 {
	if p.Validate() != nil {
		return math.NaN()
	}
	return sensitivity125[p.SF] + 10*math.Log10(p.exactBandwidth()/125000)
}

// SNRFloorDB returns the lowest SNR at which p's SF demodulates (SX1276),
// independent of bandwidth. It returns NaN for invalid parameters.
func (p Params) SNRFloorDB() float64 {
	if p.Validate() != nil {
		return math.NaN()
	}
	return snrFloor[p.SF]
}

// Model is the radio environment the medium and topology builders share:
// path loss, shadowing and the receiver's noise figure.
type Model struct {
	// PathLoss is the propagation model.
	PathLoss PathLoss
	// NoiseFigureDB is the receiver noise figure.
	NoiseFigureDB float64
	// Sensitivity is the datasheet table of receiver sensitivity (the
	// zero value is SX1272's).
	Sensitivity SensitivityTable
}

// DefaultModel returns DefaultPathLoss with a 6 dB noise figure.
func DefaultModel() Model {
	return Model{PathLoss: DefaultPathLoss(), NoiseFigureDB: DefaultNoiseFigureDB}
}

// Validate reports an unusable model, naming the field.
func (m Model) Validate() error {
	if err := m.PathLoss.Validate(); err != nil {
		return err
	}
	if m.Sensitivity != SX1272 && m.Sensitivity != SX1276 {
		return fmt.Errorf("%w: Model.Sensitivity %d is not a table", ErrInvalidModel, int(m.Sensitivity))
	}
	if !(m.NoiseFigureDB >= 0) || !finite(m.NoiseFigureDB) {
		return fmt.Errorf("%w: Model.NoiseFigureDB %v must be zero or positive", ErrInvalidModel, m.NoiseFigureDB)
	}
	return nil
}

// NoiseFloorDBm returns the receiver noise floor in p's bandwidth,
// -174 + 10 log10(BW) + NF dBm (-117.03 dBm at 125 kHz and 6 dB), or NaN
// for an invalid bandwidth.
func (m Model) NoiseFloorDBm(p Params) float64 {
	bw := p.exactBandwidth()
	if bw == 0 {
		return math.NaN()
	}
	return -174 + 10*math.Log10(bw) + m.NoiseFigureDB
}

// ThresholdDBm returns the weakest received power at which a frame with
// parameters p is demodulated: the power must reach the sensitivity and the
// SNR must reach the SNR floor, so this is the larger of the sensitivity and
// noise floor + SNR floor. With the default noise figure the SNR floor is
// the stricter at SF9, SF10 and SF11 (by 0.47, 0.97 and 0.47 dB): the
// datasheets' tables are not quite consistent with a 6 dB noise figure.
// NaN for invalid parameters.
func (m Model) ThresholdDBm(p Params) float64 {
	return math.Max(m.SensitivityDBm(p), m.NoiseFloorDBm(p)+p.SNRFloorDB())
}

// RxPowerDBm returns the received power over a link: transmit power plus
// both antenna gains minus the mean path loss at distanceM, minus the
// link's shadowing (a positive shadowDB is extra loss).
func (m Model) RxPowerDBm(tx, rx Device, distanceM, shadowDB float64) float64 {
	return tx.TxPowerDBm + tx.GainDBi + rx.GainDBi - m.PathLoss.LossDB(distanceM, tx.HeightM, rx.HeightM) - shadowDB
}

// SNRDB returns the signal-to-noise ratio of a frame received at
// rxPowerDBm with parameters p (thermal noise only).
func (m Model) SNRDB(p Params, rxPowerDBm float64) float64 {
	return rxPowerDBm - m.NoiseFloorDBm(p)
}

// Reachable reports whether a frame with parameters p sent from tx reaches
// rx at distanceM with the given shadowing: the received power reaches
// ThresholdDBm. Use shadowDB 0 for the mean link.
func (m Model) Reachable(p Params, tx, rx Device, distanceM, shadowDB float64) bool {
	return m.RxPowerDBm(tx, rx, distanceM, shadowDB) >= m.ThresholdDBm(p)
}

// MaxRange returns the distance in metres at which the mean received power
// (no shadowing) falls to ThresholdDBm: the reach of tx's frames with
// parameters p at receivers like rx. It returns 0 if even at the reference
// distance the link budget falls short, and NaN for invalid parameters.
// Shadowing makes real links reach further or less far; a medium's
// [Medium.Neighbours] accounts for each link's own draw.
func (m Model) MaxRange(p Params, tx, rx Device) float64 {
	th := m.ThresholdDBm(p)
	if math.IsNaN(th) {
		return th
	}
	budget := tx.TxPowerDBm + tx.GainDBi + rx.GainDBi - th // the loss the link can afford
	if m.PathLoss.Kind != LogDistance {
		return m.PathLoss.DistanceAtLossM(budget, tx.HeightM, rx.HeightM)
	}
	if budget < m.PathLoss.RefLossDB {
		return 0
	}
	return m.PathLoss.DistanceM(budget)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
