package radio

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// DutyCycleWindow is the observation period of a duty cycle: the limit
// applies to every hour, sliding.
const DutyCycleWindow = time.Hour

// SubBand is a regulated frequency range and the share of time a device may
// transmit in it.
type SubBand struct {
	// Name is the sub-band's name in the regulation ("g1").
	Name string
	// LowHz and HighHz bound the sub-band; a channel must lie within them
	// entirely.
	LowHz, HighHz int64
	// MaxERPmW is the highest effective radiated power allowed, in mW.
	MaxERPmW float64
	// DutyCycle is the share of any hour a device may transmit, 0.01 for
	// 1 %.
	DutyCycle float64
}

// AirtimePerHour returns the airtime the duty cycle allows per hour,
// rounded to the nanosecond (36 s at 1 %).
func (b SubBand) AirtimePerHour() time.Duration {
	return time.Duration(math.Round(b.DutyCycle * float64(DutyCycleWindow)))
}

// MaxERPDBm returns MaxERPmW in dBm (25 mW is 13.98 dBm).
func (b SubBand) MaxERPDBm() float64 { return 10 * math.Log10(b.MaxERPmW) }

// DipoleGainDBi is the gain of a half-wave dipole: effective radiated
// power (e.r.p., the regulation's measure) is e.i.r.p. minus 2.15 dB.
const DipoleGainDBi = 2.15

// CheckPower reports, as ErrPowerLimit, a transmitter whose e.r.p.
// (conducted power plus antenna gain minus 2.15 dB) exceeds the
// sub-band's limit: 14 dBm into a 0 dBi antenna is 11.85 dBm e.r.p., within
// 25 mW (13.98 dBm); 14 dBm into a 5 dBi antenna is not. The customary
// round figures (14 dBm e.r.p. for 25 mW, 27 dBm for 500 mW) pass: the
// limit has a 0.05 dB rounding allowance.
func (b SubBand) CheckPower(txPowerDBm, gainDBi float64) error {
	erp := txPowerDBm + gainDBi - DipoleGainDBi
	if erp > b.MaxERPDBm()+0.05 {
		return fmt.Errorf("%w: %.2f dBm + %.2f dBi is %.2f dBm e.r.p., above sub-band %s's %g mW (%.2f dBm e.r.p.)",
			ErrPowerLimit, txPowerDBm, gainDBi, erp, b.Name, b.MaxERPmW, b.MaxERPDBm())
	}
	return nil
}

// Contains reports whether a channel centred on freqHz, bandwidthHz wide,
// lies within the sub-band, edges included. The nominal bandwidth is used
// (7800 Hz for the 7.8 kHz LoRa bandwidth, really 7812.5 Hz).
func (b SubBand) Contains(freqHz int64, bandwidthHz int) bool {
	bw := int64(bandwidthHz)
	return 2*freqHz-bw >= 2*b.LowHz && 2*freqHz+bw <= 2*b.HighHz
}

// Validate reports a malformed sub-band, naming the field.
func (b SubBand) Validate() error {
	switch {
	case b.Name == "":
		return fmt.Errorf("%w: SubBand.Name is empty", ErrInvalidBand)
	case b.LowHz <= 0 || b.HighHz <= b.LowHz:
		return fmt.Errorf("%w: sub-band %s: SubBand.LowHz %d and HighHz %d must satisfy 0 < LowHz < HighHz", ErrInvalidBand, b.Name, b.LowHz, b.HighHz)
	case !(b.DutyCycle > 0 && b.DutyCycle <= 1):
		return fmt.Errorf("%w: sub-band %s: SubBand.DutyCycle %v not in (0, 1]", ErrInvalidBand, b.Name, b.DutyCycle)
	case !(b.MaxERPmW > 0) || !finite(b.MaxERPmW):
		return fmt.Errorf("%w: sub-band %s: SubBand.MaxERPmW %v must be positive", ErrInvalidBand, b.Name, b.MaxERPmW)
	}
	return nil
}

// BandPlan is a set of non-overlapping sub-bands. It is immutable, so one
// plan serves every node's [Ledger].
type BandPlan struct {
	bands []SubBand
}

// NewBandPlan validates the sub-bands and returns the plan.
func NewBandPlan(bands ...SubBand) (*BandPlan, error) {
	bands = slices.Clone(bands)
	slices.SortFunc(bands, func(a, b SubBand) int { return cmp.Compare(a.LowHz, b.LowHz) })
	for i, b := range bands {
		if err := b.Validate(); err != nil {
			return nil, err
		}
		if i > 0 && bands[i-1].HighHz > b.LowHz {
			return nil, fmt.Errorf("%w: sub-bands %s and %s overlap", ErrInvalidBand, bands[i-1].Name, b.Name)
		}
	}
	return &BandPlan{bands: bands}, nil
}

// EU868 returns the EU 863-870 MHz sub-bands of ETSI EN 300 220 and
// CEPT ERC/REC 70-03 that LoRa uses:
//
//	g  (also K) 863.0-865.0 MHz   25 mW e.r.p.  0.1 %
//	h1.4        865.0-868.0 MHz   25 mW e.r.p.  1 %
//	g1          868.0-868.6 MHz   25 mW e.r.p.  1 %
//	g2          868.7-869.2 MHz   25 mW e.r.p.  0.1 %
//	g3          869.4-869.65 MHz 500 mW e.r.p. 10 %
//	g4          869.7-870.0 MHz   25 mW e.r.p.  1 %
//
// (h1.4 is the name ERC/REC 70-03's annex 1 gives 865-868 MHz for
// non-specific short-range devices; the older letters name the others.
// 869.7-870.0 MHz also allows 5 mW without a duty cycle; the plan keeps
// the 25 mW, 1 % option, like the other sub-bands.) A
// channel must lie within one sub-band: one that straddles two is refused.
// Listen-before-talk with adaptive frequency agility, the regulation's
// alternative to the duty cycle, is not modelled.
func EU868() *BandPlan {
	p, err := NewBandPlan(
		SubBand{Name: "g", LowHz: 863_000_000, HighHz: 865_000_000, MaxERPmW: 25, DutyCycle: 0.001},
		SubBand{Name: "h1.4", LowHz: 865_000_000, HighHz: 868_000_000, MaxERPmW: 25, DutyCycle: 0.01},
		SubBand{Name: "g1", LowHz: 868_000_000, HighHz: 868_600_000, MaxERPmW: 25, DutyCycle: 0.01},
		SubBand{Name: "g2", LowHz: 868_700_000, HighHz: 869_200_000, MaxERPmW: 25, DutyCycle: 0.001},
		SubBand{Name: "g3", LowHz: 869_400_000, HighHz: 869_650_000, MaxERPmW: 500, DutyCycle: 0.1},
		SubBand{Name: "g4", LowHz: 869_700_000, HighHz: 870_000_000, MaxERPmW: 25, DutyCycle: 0.01},
	)
	if err != nil {
		panic(err) // the table above is valid; a test proves it
	}
	return p
}

// SubBands returns a copy of the plan's sub-bands, in frequency order.
func (bp *BandPlan) SubBands() []SubBand { return slices.Clone(bp.bands) }

// Find returns the sub-band a channel lies in. A channel in none (outside
// the plan, between sub-bands, or straddling an edge) is ErrOutsideBand.
func (bp *BandPlan) Find(freqHz int64, bandwidthHz int) (SubBand, error) {
	i, err := bp.find(freqHz, bandwidthHz)
	if err != nil {
		return SubBand{}, err
	}
	return bp.bands[i], nil
}

func (bp *BandPlan) find(freqHz int64, bandwidthHz int) (int, error) {
	if bandwidthHz < 0 {
		return 0, fmt.Errorf("%w: bandwidth %d Hz is negative", ErrInvalidParams, bandwidthHz)
	}
	for i, b := range bp.bands {
		if b.Contains(freqHz, bandwidthHz) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %d Hz with %d Hz bandwidth", ErrOutsideBand, freqHz, bandwidthHz)
}

// DutyCycle accounts one node's airtime in one sub-band over a sliding hour.
//
// The rule is exact, not bucketed: a transmission of airtime a starting at
// t is allowed if the airtime in the hour that ends when it ends,
// [t + a - 1h, t + a), stays within the limit. (That hour is the fullest
// of all the hours that contain part of the new transmission.) Past
// transmissions count for the part of them inside the hour, so airtime
// ages out continuously, and [DutyCycle.CanTransmit] can say exactly when
// enough of it has.
//
// Records older than an hour are dropped, so memory is bounded by one
// hour's transmissions.
type DutyCycle struct {
	limit time.Duration
	recs  ring[dcRec]
	// total is the airtime of every record ever made; with each record's
	// pre, the airtime from any record to the newest is one subtraction,
	// so Used and CanTransmit binary-search instead of walking the hour.
	total time.Duration
	// base is the start of the first record ever made: records keep their
	// start as an offset from it, so a record is three integers without a
	// pointer (a 10,000-node simulation keeps an hour of them per node).
	base  time.Time
	based bool
}

type dcRec struct {
	off time.Duration // start, from DutyCycle.base
	air time.Duration
	pre time.Duration // DutyCycle.total before this record
}

// since is the airtime of the records from r to the newest.
func (d *DutyCycle) since(r *dcRec) time.Duration { return d.total - r.pre }

// endOff is r's end as an offset from base.
func (r *dcRec) endOff() time.Duration { return r.off + r.air }

func (d *DutyCycle) start(r *dcRec) time.Time { return d.base.Add(r.off) }
func (d *DutyCycle) end(r *dcRec) time.Time   { return d.base.Add(r.endOff()) }

// offset is at as an offset from base.
func (d *DutyCycle) offset(at time.Time) time.Duration { return at.Sub(d.base) }

// NewDutyCycle returns an accountant allowing limit of airtime per hour
// (see [SubBand.AirtimePerHour]).
func NewDutyCycle(limit time.Duration) *DutyCycle { return &DutyCycle{limit: limit} }

// Limit returns the airtime allowed per hour.
func (d *DutyCycle) Limit() time.Duration { return d.limit }

// Record adds a transmission of airtime starting at at. Transmissions must
// be recorded in order and must not overlap (a radio sends one frame at a
// time): at before the end of the previous one is ErrTimeOrder. Record
// does not check the limit; ask [DutyCycle.CanTransmit] first.
func (d *DutyCycle) Record(at time.Time, airtime time.Duration) error {
	if airtime <= 0 {
		return fmt.Errorf("%w: %v", ErrInvalidAirtime, airtime)
	}
	if !d.based {
		d.base, d.based = at, true
	}
	o := d.offset(at)
	if n := d.recs.len(); n > 0 {
		if last := d.recs.at(n - 1); o < last.endOff() {
			return fmt.Errorf("%w: transmission at %v starts before the previous one ends (%v)", ErrTimeOrder, at, d.end(last))
		}
	}
	horizon := o - DutyCycleWindow
	for d.recs.len() > 0 && d.recs.at(0).endOff() <= horizon {
		d.recs.popFront()
	}
	d.recs.push(dcRec{off: o, air: airtime, pre: d.total})
	d.total += airtime
	return nil
}

// Used returns the airtime recorded in the hour before at, [at - 1h, at).
func (d *DutyCycle) Used(at time.Time) time.Duration {
	n := d.recs.len()
	if n == 0 {
		return 0
	}
	o := d.offset(at)
	from := o - DutyCycleWindow
	if o >= d.recs.at(n-1).endOff() {
		// Nothing to clip at the end: records are in order and do not
		// overlap, so only the oldest one ending after from can start
		// before it.
		i := sort.Search(n, func(i int) bool { return d.recs.at(i).endOff() > from })
		if i == n {
			return 0
		}
		r := d.recs.at(i)
		used := d.since(r)
		if r.off < from {
			used -= from - r.off
		}
		return used
	}
	var used time.Duration
	for i := d.recs.len() - 1; i >= 0; i-- {
		r := d.recs.at(i)
		s, e := r.off, r.endOff()
		if e <= from {
			break
		}
		s, e = max(s, from), min(e, o)
		if e > s {
			used += e - s
		}
	}
	return used
}

// CanTransmit reports whether a transmission of airtime may start at at,
// and if not, the earliest time it may: the moment enough old airtime has
// left the hour, to the nanosecond. When ok, earliest is at. A
// transmission longer than the whole hourly limit is never allowed:
// ok is false and earliest is the zero Time.
//
// The answer assumes the new transmission starts after the recorded ones
// end.
func (d *DutyCycle) CanTransmit(at time.Time, airtime time.Duration) (ok bool, earliest time.Time) {
	if airtime > d.limit {
		return false, time.Time{}
	}
	budget := d.limit - max(airtime, 0) // what the past may use of the hour
	// The hour that ends with the new transmission must begin no earlier
	// than w, the point after which exactly budget of past airtime lies.
	// The airtime from record i to the newest falls as i grows: the
	// newest record at which it exceeds budget is the one before the
	// first at which it does not.
	n := d.recs.len()
	if n == 0 || d.since(d.recs.at(0)) <= budget {
		return true, at // the whole record fits: the search below would say so
	}
	i := sort.Search(n, func(i int) bool { return d.since(d.recs.at(i)) <= budget }) - 1
	if i < 0 {
		return true, at
	}
	r := d.recs.at(i)
	sum := d.since(r) - r.air // the airtime of the records after r
	w := r.endOff() - (budget - sum)
	if t := w + DutyCycleWindow - max(airtime, 0); t > d.offset(at) {
		return false, d.base.Add(t)
	}
	return true, at
}

// Ledger is one node's duty-cycle accounting across the sub-bands of a
// band plan: a [DutyCycle] per sub-band, created when first used.
type Ledger struct {
	plan *BandPlan
	acc  []*DutyCycle
	// last is the channel asked for last and its sub-band's index: a
	// node mostly sends on one channel, and every frame asks three times.
	last struct {
		freq int64
		bw   int
		i    int
		ok   bool
		// d is acc[i] once made: one memory load fewer per question
		// (10,000 ledgers do not stay in a cache).
		d *DutyCycle
	}
}

// NewLedger returns an empty ledger for plan.
func NewLedger(plan *BandPlan) *Ledger {
	return &Ledger{plan: plan, acc: make([]*DutyCycle, len(plan.bands))}
}

func (l *Ledger) account(freqHz int64, bandwidthHz int) (*DutyCycle, error) {
	if l.last.d != nil && l.last.freq == freqHz && l.last.bw == bandwidthHz {
		return l.last.d, nil
	}
	i := l.last.i
	if !l.last.ok || l.last.freq != freqHz || l.last.bw != bandwidthHz {
		var err error
		if i, err = l.plan.find(freqHz, bandwidthHz); err != nil {
			return nil, err
		}
		l.last.freq, l.last.bw, l.last.i, l.last.ok = freqHz, bandwidthHz, i, true
	}
	if l.acc[i] == nil {
		l.acc[i] = NewDutyCycle(l.plan.bands[i].AirtimePerHour())
	}
	l.last.d = l.acc[i]
	return l.acc[i], nil
}

// CanTransmit is [DutyCycle.CanTransmit] in the sub-band of the channel
// (freqHz, bandwidthHz); a channel outside every sub-band is
// ErrOutsideBand.
func (l *Ledger) CanTransmit(at time.Time, freqHz int64, bandwidthHz int, airtime time.Duration) (ok bool, earliest time.Time, err error) {
	d, err := l.account(freqHz, bandwidthHz)
	if err != nil {
		return false, time.Time{}, err
	}
	ok, earliest = d.CanTransmit(at, airtime)
	return ok, earliest, nil
}

// Record is [DutyCycle.Record] in the sub-band of the channel.
func (l *Ledger) Record(at time.Time, freqHz int64, bandwidthHz int, airtime time.Duration) error {
	d, err := l.account(freqHz, bandwidthHz)
	if err != nil {
		return err
	}
	return d.Record(at, airtime)
}

// Used is [DutyCycle.Used] in the sub-band of the channel.
func (l *Ledger) Used(at time.Time, freqHz int64, bandwidthHz int) (time.Duration, error) {
	d, err := l.account(freqHz, bandwidthHz)
	if err != nil {
		return 0, err
	}
	return d.Used(at), nil
}
