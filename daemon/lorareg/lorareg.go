// Package lorareg holds the regional rules a meshd LoRa link obeys, and the
// daemon's duty-cycle ledger: which frequencies, powers and settings a
// region allows, how long a frame is on the air, and when the next frame
// may go.
//
// Regions:
//
//   - EU868 (ETSI EN 300 220, CEPT ERC/REC 70-03): the channel must lie
//     inside one sub-band; each sub-band has a duty cycle over any hour and
//     a power limit (e.r.p.):
//
//     g  863.0-865.0   MHz  25 mW (14 dBm)   0.1 %
//     h1.4 865.0-868.0 MHz  25 mW (14 dBm)   1 %
//     g1 868.0-868.6   MHz  25 mW (14 dBm)   1 %
//     g2 868.7-869.2   MHz  25 mW (14 dBm)   0.1 %
//     g3 869.4-869.65  MHz 500 mW (27 dBm)  10 %
//     g4 869.7-870.0   MHz  25 mW (14 dBm)   1 %
//
//     Frequencies outside every sub-band are refused. Slow settings lower
//     the MTU to the largest frame that fits in the hour's whole budget
//     (and are refused below MinMTU). The ledger is exact
//     over a sliding hour, per sub-band; a frame the budget does not allow
//     yet is deferred until enough airtime has aged out of the hour.
//
//   - US915 (FCC part 15): 902-928 MHz, at most 30 dBm, no duty cycle, and
//     no transmission may last longer than 400 ms (dwell time). meshd lowers
//     the link's MTU to the largest frame that fits in 400 ms and refuses any
//     longer frame; it does not hop channels, so meeting the rest of FCC
//     15.247 (hopping, or a 500 kHz digital-modulation channel) is the
//     operator's business.
//
// Airtime is the Semtech formula (SX127x datasheet, AN1200.13) as
// simulations/radio computes it, with what an RNode really sends: explicit
// header, CRC on, low data rate optimisation when a symbol lasts more than
// 16 ms, the modem's 1-byte header on every frame, and the preamble the RNode
// firmware asks for (24 ms worth of symbols, at least 18; 6 ms above
// 30 kbit/s) plus the 4.25 symbols of sync word and delimiter every chip
// adds. What goes on air depends on the modem's chip, which the host
// protocol does not tell: the firmware's SX127x driver writes the count
// minus 4 to the chip's register (18.25 symbols on air for 18), its SX126x
// and SX128x drivers write the count itself (22.25 on air). The ledger
// charges the longer one, so it never undercounts a current SX1262 board;
// on an SX1276 board it leaves about 4 % (SF9) to 5 % (SF12) of the hour
// unused.
package lorareg

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"meshd.dev/meshd/simulations/radio"
)

// Region is a regulatory region.
type Region string

// Regions.
const (
	EU868 Region = "EU868"
	US915 Region = "US915"
)

// Errors.
var (
	ErrRegion     = errors.New("lorareg: unknown region")
	ErrFrequency  = errors.New("lorareg: frequency not allowed")
	ErrSF         = errors.New("lorareg: spreading factor out of range")
	ErrBandwidth  = errors.New("lorareg: bandwidth not allowed")
	ErrCodingRate = errors.New("lorareg: coding rate out of range")
	ErrPower      = errors.New("lorareg: TX power above the limit")
	ErrDwell      = errors.New("lorareg: frame longer than the dwell time")
	ErrBudget     = errors.New("lorareg: frame longer than the hour's whole duty-cycle budget")
)

// Settings are an operator's radio settings.
type Settings struct {
	Region      Region
	FrequencyHz int64
	BandwidthHz int
	SF          int
	// CR is the coding rate denominator, 5..8 (4/5..4/8), as RNode takes it.
	CR         int
	TxPowerDBm int
}

// Limits.
const (
	MinSF      = 7
	MaxSF      = 12
	USDwell    = 400 * time.Millisecond
	usLowHz    = 902_000_000
	usHighHz   = 928_000_000
	usMaxPower = 30
	// MaxMTU is the largest link frame: a 255-byte LoRa frame less the
	// RNode's 1-byte header.
	MaxMTU = 254
	// MinMTU is the smallest the routing engine fragments for.
	MinMTU = 32
	// modemHeader is the RNode's header on each LoRa frame.
	modemHeader = 1
)

// Plan is validated settings and what follows from them.
type Plan struct {
	Settings
	Params radio.Params
	// SubBand is the EU868 sub-band the channel lies in (zero elsewhere).
	SubBand radio.SubBand
	// DutyCycle is the share of any hour the link may transmit (0: none).
	DutyCycle float64
	// Dwell is the longest a single frame may last (0: no limit).
	Dwell time.Duration
	// MaxPowerDBm is the region's (sub-band's) power limit.
	MaxPowerDBm int
	// MTU is the largest link frame: 254, or less when a dwell limit or
	// the hour's duty-cycle budget allows no more.
	MTU int
}

// Check validates settings for their region and returns the plan. Errors
// name the setting and the values.
func Check(s Settings) (Plan, error) {
	p := Plan{Settings: s}
	if s.SF < MinSF || s.SF > MaxSF {
		return p, fmt.Errorf("%w: sf %d not in %d..%d", ErrSF, s.SF, MinSF, MaxSF)
	}
	if s.CR < 5 || s.CR > 8 {
		return p, fmt.Errorf("%w: cr %d not in 5..8 (4/5..4/8)", ErrCodingRate, s.CR)
	}
	cr, _ := radio.CodingRateFromDenominator(s.CR)
	p.Params = radio.NewParams(s.SF, s.BandwidthHz, cr)
	if err := p.Params.Validate(); err != nil {
		return p, fmt.Errorf("%w: bandwidth %d Hz (one of 7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)", ErrBandwidth, s.BandwidthHz)
	}
	p.Params.PreambleSymbols = rnodePreamble(p.Params)
	if s.TxPowerDBm < 0 {
		return p, fmt.Errorf("%w: tx_power %d dBm is negative", ErrPower, s.TxPowerDBm)
	}
	var err error
	switch s.Region {
	case EU868:
		err = p.checkEU()
	case US915:
		err = p.checkUS()
	default:
		return p, fmt.Errorf("%w: %q (EU868 or US915)", ErrRegion, s.Region)
	}
	if err != nil {
		return p, err
	}
	if s.TxPowerDBm > p.MaxPowerDBm {
		return p, fmt.Errorf("%w: tx_power %d dBm, %s allows at most %d dBm here", ErrPower, s.TxPowerDBm, p.where(), p.MaxPowerDBm)
	}
	return p, nil
}

func (p *Plan) where() string {
	if p.SubBand.Name != "" {
		return fmt.Sprintf("EU868 sub-band %s", p.SubBand.Name)
	}
	return string(p.Region)
}

func (p *Plan) checkEU() error {
	plan := radio.EU868()
	b, err := plan.Find(p.FrequencyHz, p.BandwidthHz)
	if err != nil {
		var names []string
		for _, sb := range plan.SubBands() {
			names = append(names, fmt.Sprintf("%s %.3f-%.3f MHz", sb.Name, float64(sb.LowHz)/1e6, float64(sb.HighHz)/1e6))
		}
		return fmt.Errorf("%w: %d Hz with %d Hz bandwidth lies in no EU868 sub-band (%s); the whole channel must fit in one",
			ErrFrequency, p.FrequencyHz, p.BandwidthHz, strings.Join(names, ", "))
	}
	p.SubBand, p.DutyCycle = b, b.DutyCycle
	p.MaxPowerDBm = int(math.Round(b.MaxERPDBm()))
	// A frame longer than the hour's whole budget could never go (Admit
	// refuses it for good), so slow settings in a 0.1 % or 1 % sub-band
	// lower the MTU, as a dwell limit does.
	budget := b.AirtimePerHour()
	p.MTU = p.largestWithin(budget)
	if p.MTU < MinMTU {
		return fmt.Errorf("%w: at sf %d and %d Hz only %d bytes fit in sub-band %s's %v an hour, the engine needs %d; use a lower sf, a wider bandwidth or another sub-band",
			ErrBudget, p.SF, p.BandwidthHz, p.MTU, b.Name, budget, MinMTU)
	}
	return nil
}

// largestWithin is the largest link frame (up to MaxMTU) whose airtime is
// at most limit; 0 if none.
func (p *Plan) largestWithin(limit time.Duration) int {
	for n := MaxMTU; n >= 1; n-- {
		if p.Airtime(n) <= limit {
			return n
		}
	}
	return 0
}

func (p *Plan) checkUS() error {
	bw := int64(p.BandwidthHz)
	if 2*p.FrequencyHz-bw < 2*usLowHz || 2*p.FrequencyHz+bw > 2*usHighHz {
		return fmt.Errorf("%w: %d Hz with %d Hz bandwidth is outside US915 (902-928 MHz)", ErrFrequency, p.FrequencyHz, p.BandwidthHz)
	}
	p.Dwell, p.MaxPowerDBm = USDwell, usMaxPower
	p.MTU = p.largestWithin(USDwell)
	if p.MTU < MinMTU {
		return fmt.Errorf("%w: at sf %d and %d Hz only %d bytes fit in US915's %v dwell time, the engine needs %d; use a lower sf or a wider bandwidth",
			ErrDwell, p.SF, p.BandwidthHz, p.MTU, USDwell, MinMTU)
	}
	return nil
}

// rnodePreamble is the preamble count the RNode firmware asks for: 24 ms
// worth of symbols (6 ms above 30 kbit/s), at least 18. It is used as the
// register value (4.25 symbols added on air), which is what SX126x and
// SX128x modems send; SX127x modems send 4 symbols less (see the package
// doc: the chip is not known, so the ledger takes the longer).
func rnodePreamble(p radio.Params) int {
	target := 24.0
	if p.Bitrate() > 30_000 {
		target -= 18
	}
	sym := float64(p.SymbolTime()) / float64(time.Millisecond)
	n := math.Ceil(target / sym)
	return int(max(n, 18))
}

// Airtime returns the time on air of a link frame of n bytes (1..508): one
// LoRa frame of n+1 bytes, or two when the modem splits it.
func (p Plan) Airtime(n int) time.Duration {
	first := min(n, MaxMTU)
	a, err := p.Params.TimeOnAir(first + modemHeader)
	if err != nil {
		return 0
	}
	if rest := n - first; rest > 0 {
		b, _ := p.Params.TimeOnAir(min(rest, MaxMTU) + modemHeader)
		a += b
	}
	return a
}

// Bitrate is the nominal bit rate, for the route metric.
func (p Plan) Bitrate() int { return int(p.Params.Bitrate()) }

// Regulator is the daemon's duty-cycle ledger and dwell rule for one modem:
// it implements the LoRa link's Gate. Safe for concurrent use.
type Regulator struct {
	plan Plan

	mu      sync.Mutex
	acc     *radio.DutyCycle
	lastEnd time.Time
}

// NewRegulator returns an empty ledger for a checked plan.
func NewRegulator(p Plan) *Regulator {
	limit := time.Hour // no duty cycle: the ledger still counts airtime
	if p.DutyCycle > 0 {
		limit = time.Duration(math.Round(p.DutyCycle * float64(time.Hour)))
	}
	return &Regulator{plan: p, acc: radio.NewDutyCycle(limit)}
}

// Plan returns the regulator's plan.
func (r *Regulator) Plan() Plan { return r.plan }

// Admit returns when a frame of n bytes may start: now, or later when the
// hour's budget is spent (the frame is deferred). A frame longer than the
// dwell time or than the whole hourly budget may never go.
func (r *Regulator) Admit(now time.Time, n int) (time.Time, error) {
	air := r.plan.Airtime(n)
	if r.plan.Dwell > 0 && air > r.plan.Dwell {
		return time.Time{}, fmt.Errorf("%w: %d bytes last %v, the limit is %v", ErrDwell, n, air, r.plan.Dwell)
	}
	if r.plan.DutyCycle == 0 {
		return now, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at := now
	if at.Before(r.lastEnd) {
		at = r.lastEnd
	}
	ok, earliest := r.acc.CanTransmit(at, air)
	switch {
	case ok:
		return at, nil
	case earliest.IsZero():
		return time.Time{}, fmt.Errorf("%w: %d bytes last %v, the hour allows %v", ErrBudget, n, air, r.acc.Limit())
	}
	return earliest, nil
}

// Record charges a frame of n bytes that started at start. A start before
// the previous frame's end (clock granularity) is moved to that end: the
// radio sends one frame at a time.
func (r *Regulator) Record(start time.Time, n int) error {
	air := r.plan.Airtime(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	if start.Before(r.lastEnd) {
		start = r.lastEnd
	}
	if err := r.acc.Record(start, air); err != nil {
		return err
	}
	r.lastEnd = start.Add(air)
	return nil
}

// Budget returns the airtime used in the hour before now and what is left
// (an hour minus use without a duty cycle).
func (r *Regulator) Budget(now time.Time) (used, left time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	used = r.acc.Used(now)
	return used, max(r.acc.Limit()-used, 0)
}

// Remaining returns the share of the hour's budget still unspent, 0..1.
func (r *Regulator) Remaining(now time.Time) float64 {
	used, left := r.Budget(now)
	if used+left == 0 {
		return 0
	}
	return float64(left) / float64(used+left)
}
