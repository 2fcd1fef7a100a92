package radio

import (
	"fmt"
	"math"
	"strconv"
)

// PathLossKind selects the formula of a [PathLoss].
type PathLossKind int

// The propagation models. Their sources and validity ranges:
//
//   - LogDistance: PL(d0) + 10 n log10(d/d0) (Rappaport, "Wireless
//     Communications", 2nd ed., eq. 4.68); the default parameters are Bor et
//     al.'s 2016 campus measurement at 868 MHz (antenna heights ignored).
//   - FreeSpace: Friis, 20 log10(4 pi d f / c), that is 32.45 dB plus
//     20 log10(f/MHz) plus 20 log10(d/km) (ITU-R P.525); valid in the far field with a clear
//     first Fresnel zone: a lower bound on every other model.
//   - TwoRayGround: free space up to the crossover distance 4 pi ht hr /
//     lambda, then 40 log10 d - 20 log10(ht hr) (Rappaport eq. 4.52, the
//     ns-2 TwoRayGround model); flat, perfectly reflecting ground.
//   - OkumuraHata: Hata 1980 (IEEE Trans. Veh. Technol. 29(3)), with the
//     small/medium-city, large-city, suburban and open-area (rural)
//     corrections; valid for 150-1500 MHz, base antenna 30-200 m, mobile
//     antenna 1-10 m, 1-20 km.
//   - COST231Hata: COST Action 231 final report (1999), section 4.4.1:
//     Hata's urban formula refitted for 1500-2000 MHz, with the
//     medium-city a(hm) and +3 dB in metropolitan centres (EnvLargeCity);
//     valid for 1500-2000 MHz with
//     the same heights and distances as Hata.
//
// Meshes put both antennas low (1-10 m), below Hata's base-station range:
// the Hata models then extrapolate, and meshsim takes the higher antenna of
// a link as the "base" and the lower as the "mobile" so that the loss is
// the same in both directions. Every model's loss is at least the free-space
// loss, so no model turns into a gain at short range.
const (
	LogDistance PathLossKind = iota
	FreeSpace
	TwoRayGround
	OkumuraHata
	COST231Hata
)

var kindNames = [...]string{"log-distance", "free-space", "two-ray", "hata", "cost231"}

// String returns the model's scenario name ("log-distance", "hata", ...).
func (k PathLossKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "PathLossKind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// ParsePathLossKind returns the model named s (as String spells it).
func ParsePathLossKind(s string) (PathLossKind, error) {
	for i, n := range kindNames {
		if n == s {
			return PathLossKind(i), nil
		}
	}
	return 0, fmt.Errorf("%w: propagation model %q is not one of log-distance, free-space, two-ray, hata, cost231", ErrInvalidModel, s)
}

// Environment is the terrain class of the Hata models.
type Environment int

// The Hata terrain classes.
const (
	// EnvUrban: small or medium city (Hata's default correction a(hm)).
	EnvUrban Environment = iota
	// EnvLargeCity: large city (Hata) or metropolitan centre (COST-231,
	// +3 dB).
	EnvLargeCity
	// EnvSuburban: Hata's suburban correction, -2 (log10(f/28))^2 - 5.4.
	EnvSuburban
	// EnvRural: Hata's open-area correction, -4.78 (log10 f)^2 +
	// 18.33 log10 f - 40.94.
	EnvRural
)

var envNames = [...]string{"urban", "large-city", "suburban", "rural"}

// String returns the environment's scenario name.
func (e Environment) String() string {
	if e < 0 || int(e) >= len(envNames) {
		return "Environment(" + strconv.Itoa(int(e)) + ")"
	}
	return envNames[e]
}

// ParseEnvironment returns the environment named s.
func ParseEnvironment(s string) (Environment, error) {
	for i, n := range envNames {
		if n == s {
			return Environment(i), nil
		}
	}
	return 0, fmt.Errorf("%w: environment %q is not one of urban, large-city, suburban, rural", ErrInvalidModel, s)
}

// DefaultAntennaHeightM is the antenna height of a node that gives none: a
// handheld or a node on a balcony.
const DefaultAntennaHeightM = 2

// DefaultFrequencyMHz is the carrier the frequency-dependent models assume
// when none is given (EU868's g1 sub-band).
const DefaultFrequencyMHz = 868.1

// speedOfLight in m/s.
const speedOfLight = 299_792_458

// freq returns the model's carrier in MHz.
func (pl PathLoss) freq() float64 {
	if pl.FrequencyMHz > 0 {
		return pl.FrequencyMHz
	}
	return DefaultFrequencyMHz
}

// height returns h, or the model's default for a node that gives none.
func (pl PathLoss) height(h float64) float64 {
	if h > 0 {
		return h
	}
	if pl.DefaultHeightM > 0 {
		return pl.DefaultHeightM
	}
	return DefaultAntennaHeightM
}

// validateKind checks the fields of the frequency-dependent models.
func (pl PathLoss) validateKind() error {
	switch {
	case pl.Kind < LogDistance || pl.Kind > COST231Hata:
		return fmt.Errorf("%w: PathLoss.Kind %d is not a model", ErrInvalidModel, int(pl.Kind))
	case pl.Environment < EnvUrban || pl.Environment > EnvRural:
		return fmt.Errorf("%w: PathLoss.Environment %d is not an environment", ErrInvalidModel, int(pl.Environment))
	case !(pl.FrequencyMHz >= 0) || !finite(pl.FrequencyMHz):
		return fmt.Errorf("%w: PathLoss.FrequencyMHz %v must be zero (868.1) or positive", ErrInvalidModel, pl.FrequencyMHz)
	case !(pl.DefaultHeightM >= 0) || !finite(pl.DefaultHeightM):
		return fmt.Errorf("%w: PathLoss.DefaultHeightM %v must be zero (2 m) or positive", ErrInvalidModel, pl.DefaultHeightM)
	case pl.Kind == OkumuraHata && (pl.freq() < 150 || pl.freq() > 1500):
		return fmt.Errorf("%w: PathLoss.FrequencyMHz %v: Okumura-Hata holds for 150-1500 MHz", ErrInvalidModel, pl.freq())
	case pl.Kind == COST231Hata && (pl.freq() < 150 || pl.freq() > 2000):
		return fmt.Errorf("%w: PathLoss.FrequencyMHz %v: COST-231-Hata holds up to 2000 MHz", ErrInvalidModel, pl.freq())
	}
	return nil
}

// LossDB returns the mean path loss, without shadowing, over distanceM
// between antennas at heights h1 and h2 metres (0: the model's default
// height). The loss is symmetric in h1 and h2 and never decreases with
// the distance nor increases with either height, which the medium's
// range bounds rely on.
func (pl PathLoss) LossDB(distanceM, h1, h2 float64) float64 {
	if pl.Kind == LogDistance {
		return pl.MeanLossDB(distanceM)
	}
	d := max(distanceM, 1) // the far field starts well within a metre at 868 MHz
	fs := freeSpaceDB(d, pl.freq())
	hb, hm := pl.height(h1), pl.height(h2)
	if hm > hb {
		hb, hm = hm, hb
	}
	switch pl.Kind {
	case TwoRayGround:
		return max(fs, 40*math.Log10(d)-20*math.Log10(hb*hm))
	case OkumuraHata, COST231Hata:
		return max(fs, hataDB(pl.Kind, pl.Environment, pl.freq(), hb, hm, d))
	}
	return fs
}

// freeSpaceDB is the Friis loss 20 log10(4 pi d f / c), f in MHz.
func freeSpaceDB(d, fMHz float64) float64 {
	return 20 * math.Log10(4*math.Pi*d*fMHz*1e6/speedOfLight)
}

// hataDB is the Okumura-Hata or COST-231-Hata loss at d metres, base
// antenna hb and mobile antenna hm (clamped to Hata's 1 m floor).
func hataDB(kind PathLossKind, env Environment, f, hb, hm, d float64) float64 {
	hm = max(hm, 1)
	lf, lhb := math.Log10(f), math.Log10(hb)
	var ahm float64
	if env == EnvLargeCity && kind == OkumuraHata {
		if f >= 300 {
			ahm = 3.2*math.Pow(math.Log10(11.75*hm), 2) - 4.97
		} else {
			ahm = 8.29*math.Pow(math.Log10(1.54*hm), 2) - 1.1
		}
	} else {
		ahm = (1.1*lf-0.7)*hm - (1.56*lf - 0.8)
	}
	slope := (44.9 - 6.55*lhb) * math.Log10(d/1000)
	if kind == COST231Hata {
		l := 46.3 + 33.9*lf - 13.82*lhb - ahm + slope
		if env == EnvLargeCity {
			l += 3
		}
		return l
	}
	l := 69.55 + 26.16*lf - 13.82*lhb - ahm + slope
	switch env {
	case EnvSuburban:
		l -= 2*math.Pow(math.Log10(f/28), 2) + 5.4
	case EnvRural:
		l -= 4.78*lf*lf - 18.33*lf + 40.94
	}
	return l
}

// DistanceAtLossM inverts LossDB for antennas at h1 and h2: the longest
// distance in metres at which the mean loss is at most lossDB (within a
// relative 1e-9). Losses that even 1 m exceeds give 0 (LogDistance: d0).
func (pl PathLoss) DistanceAtLossM(lossDB, h1, h2 float64) float64 {
	if pl.Kind == LogDistance {
		return pl.DistanceM(lossDB)
	}
	if math.IsNaN(lossDB) || pl.LossDB(1, h1, h2) > lossDB {
		return 0
	}
	// Bisection on log d: the loss never decreases with distance.
	lo, hi := 0.0, 10.0 // 1 m .. 10^10 m
	if pl.LossDB(math.Pow(10, hi), h1, h2) <= lossDB {
		return math.Pow(10, hi)
	}
	for hi-lo > 1e-12 {
		mid := (lo + hi) / 2
		if pl.LossDB(math.Pow(10, mid), h1, h2) <= lossDB {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Pow(10, lo)
}
