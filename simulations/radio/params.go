package radio

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// CodingRate is the LoRa forward-error-correction rate as the Semtech
// time-on-air formula counts it: 1..4 for 4/5..4/8. Use the constants.
//
// Some tools store the denominator (5..8) instead, and a formula fed with
// that adds 4 a second time (a known trap in LoRa tools). Such values are not
// valid CodingRates: [Params.Validate] rejects 5..8 with a hint, and
// [CodingRateFromDenominator] converts an RNode-style 5..8 value.
type CodingRate int

// The four LoRa coding rates.
const (
	CR45 CodingRate = 1 // 4/5
	CR46 CodingRate = 2 // 4/6
	CR47 CodingRate = 3 // 4/7
	CR48 CodingRate = 4 // 4/8
)

// CodingRateFromDenominator converts the denominator of a coding rate 4/d
// (5..8, as the RNode CR command and many radio libraries store it) to a
// CodingRate.
func CodingRateFromDenominator(d int) (CodingRate, error) {
	if d < 5 || d > 8 {
		return 0, fmt.Errorf("%w: coding rate denominator %d not in 5..8 (4/5..4/8)", ErrInvalidParams, d)
	}
	return CodingRate(d - 4), nil
}

// Denominator returns d of the coding rate 4/d (5..8), or 0 for an invalid
// CodingRate.
func (c CodingRate) Denominator() int {
	if !c.valid() {
		return 0
	}
	return int(c) + 4
}

// String returns "4/5".."4/8", or "CodingRate(n)" for an invalid value.
func (c CodingRate) String() string {
	if !c.valid() {
		return "CodingRate(" + strconv.Itoa(int(c)) + ")"
	}
	return "4/" + strconv.Itoa(c.Denominator())
}

func (c CodingRate) valid() bool { return c >= CR45 && c <= CR48 }

// LowDataRate selects the low-data-rate optimisation (LDRO, "DE" in the
// time-on-air formula).
type LowDataRate int

const (
	// LowDataRateAuto turns the optimisation on exactly when the symbol
	// time exceeds 16 ms, as Semtech mandates (SF11 and SF12 at 125 kHz,
	// SF12 at 250 kHz, more at narrower bandwidths). The zero value.
	LowDataRateAuto LowDataRate = iota
	// LowDataRateOn forces the optimisation on.
	LowDataRateOn
	// LowDataRateOff forces it off.
	LowDataRateOff
)

// String returns "auto", "on" or "off".
func (l LowDataRate) String() string {
	switch l {
	case LowDataRateAuto:
		return "auto"
	case LowDataRateOn:
		return "on"
	case LowDataRateOff:
		return "off"
	}
	return "LowDataRate(" + strconv.Itoa(int(l)) + ")"
}

// lowDataRateSymbol is the symbol time above which LDRO is mandated.
const lowDataRateSymbol = 16 * time.Millisecond

// Limits of the parameters the SX127x accepts and the formula covers.
const (
	MinSF              = 6     // lowest spreading factor (implicit header only)
	MaxSF              = 12    // highest spreading factor
	MinPreambleSymbols = 6     // shortest programmable preamble (SX127x)
	MaxPreambleSymbols = 65535 // longest: the 16-bit preamble length register
	MaxPayload         = 255   // bytes in one LoRa frame
)

// bandwidths are the LoRa bandwidths of the SX127x by their nominal value in
// Hz (as RNode's BANDWIDTH command and the datasheet name them), with the
// exact duration of one chip: the narrow ones are 125 kHz divided by 16, 12,
// 8, 6, 4, 3 and 2, so 7.8 kHz is really 7812.5 Hz. Every chip time is a
// whole number of nanoseconds, which keeps time on air exact.
var bandwidths = [...]struct {
	hz     int
	chipNs int64
}{
	{7800, 128000},
	{10400, 96000},
	{15600, 64000},
	{20800, 48000},
	{31250, 32000},
	{41700, 24000},
	{62500, 16000},
	{125000, 8000},
	{250000, 4000},
	{500000, 2000},
}

// bandwidthIndex returns the index of hz in bandwidths, or -1. (A switch:
// time on air is computed for every frame.)
func bandwidthIndex(hz int) int {
	switch hz {
	case 7800:
		return 0
	case 10400:
		return 1
	case 15600:
		return 2
	case 20800:
		return 3
	case 31250:
		return 4
	case 41700:
		return 5
	case 62500:
		return 6
	case 125000:
		return 7
	case 250000:
		return 8
	case 500000:
		return 9
	}
	return -1
}

// bandwidthList is the list of accepted bandwidths for error messages.
var bandwidthList = func() string {
	s := ""
	for i, b := range bandwidths {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(b.hz)
	}
	return s
}()

// Params are the LoRa modulation and packet parameters of a transmission:
// everything that decides its time on air. The zero value is not valid; see
// [NewParams] for the usual explicit-header, CRC-on, 8-symbol-preamble
// settings.
type Params struct {
	// SF is the spreading factor, 6..12. SF6 requires an implicit header.
	SF int
	// BandwidthHz is the bandwidth: 125000, 250000 or 500000, or one of
	// the narrow SX1276 bandwidths 7800, 10400, 15600, 20800, 31250, 41700,
	// 62500 (nominal values; the exact ones, such as 7812.5 Hz, are used
	// for timing).
	BandwidthHz int
	// CodingRate is 1..4 for 4/5..4/8 (CR45..CR48), never the denominator.
	CodingRate CodingRate
	// PreambleSymbols is the programmed preamble length, 6..65535 (LoRaWAN,
	// RNode and the reference point use 8; Meshtastic uses 16). The radio
	// adds 4.25 symbols of sync word and start-frame delimiter.
	PreambleSymbols int
	// ExplicitHeader sends the LoRa PHY header (length, coding rate, CRC
	// flag). False means implicit header mode.
	ExplicitHeader bool
	// CRC appends the 16-bit payload CRC.
	CRC bool
	// LowDataRateOptimize selects the low-data-rate optimisation; the zero
	// value is automatic.
	LowDataRateOptimize LowDataRate
}

// NewParams returns the common settings for sf, bandwidth and coding rate:
// explicit header, CRC on, 8 preamble symbols, automatic low-data-rate
// optimisation. It does not validate; [Params.Validate] does.
func NewParams(sf, bandwidthHz int, cr CodingRate) Params {
	return Params{
		SF:              sf,
		BandwidthHz:     bandwidthHz,
		CodingRate:      cr,
		PreambleSymbols: 8,
		ExplicitHeader:  true,
		CRC:             true,
	}
}

// Validate reports the first invalid field, wrapped in ErrInvalidParams and
// named as Params.Field.
func (p Params) Validate() error {
	switch {
	case p.SF < MinSF || p.SF > MaxSF:
		return fmt.Errorf("%w: Params.SF %d not in %d..%d", ErrInvalidParams, p.SF, MinSF, MaxSF)
	case p.SF == 6 && p.ExplicitHeader:
		return fmt.Errorf("%w: Params.ExplicitHeader must be false at SF6 (SF6 supports implicit header mode only)", ErrInvalidParams)
	case bandwidthIndex(p.BandwidthHz) < 0:
		return fmt.Errorf("%w: Params.BandwidthHz %d is not a LoRa bandwidth (one of %s)", ErrInvalidParams, p.BandwidthHz, bandwidthList)
	case p.CodingRate >= 5 && p.CodingRate <= 8:
		return fmt.Errorf("%w: Params.CodingRate %d looks like the denominator of 4/%d; it takes 1..4 (CR45..CR48), convert with CodingRateFromDenominator",
			ErrInvalidParams, int(p.CodingRate), int(p.CodingRate))
	case !p.CodingRate.valid():
		return fmt.Errorf("%w: Params.CodingRate %d not in 1..4 (4/5..4/8)", ErrInvalidParams, int(p.CodingRate))
	case p.PreambleSymbols < MinPreambleSymbols || p.PreambleSymbols > MaxPreambleSymbols:
		return fmt.Errorf("%w: Params.PreambleSymbols %d not in %d..%d", ErrInvalidParams, p.PreambleSymbols, MinPreambleSymbols, MaxPreambleSymbols)
	case p.LowDataRateOptimize < LowDataRateAuto || p.LowDataRateOptimize > LowDataRateOff:
		return fmt.Errorf("%w: Params.LowDataRateOptimize %d is not auto, on or off", ErrInvalidParams, int(p.LowDataRateOptimize))
	}
	return nil
}

// String is a compact description such as "SF9/125kHz/4/5 pre8 explicit crc ldro=auto".
func (p Params) String() string {
	hdr := "implicit"
	if p.ExplicitHeader {
		hdr = "explicit"
	}
	crc := "nocrc"
	if p.CRC {
		crc = "crc"
	}
	return fmt.Sprintf("SF%d/%gkHz/%v pre%d %s %s ldro=%v",
		p.SF, float64(p.BandwidthHz)/1000, p.CodingRate, p.PreambleSymbols, hdr, crc, p.LowDataRateOptimize)
}

// chipNs returns the chip duration in nanoseconds, or 0 for an unknown
// bandwidth.
func (p Params) chipNs() int64 {
	i := bandwidthIndex(p.BandwidthHz)
	if i < 0 {
		return 0
	}
	return bandwidths[i].chipNs
}

// exactBandwidth returns the bandwidth in Hz as the radio really uses it
// (7812.5 for the nominal 7800), or 0 for an unknown bandwidth.
func (p Params) exactBandwidth() float64 {
	c := p.chipNs()
	if c == 0 {
		return 0
	}
	return 1e9 / float64(c)
}

// SymbolTime returns Tsym = 2^SF / BW, exactly. It returns 0 if SF or the
// bandwidth is invalid.
func (p Params) SymbolTime() time.Duration {
	c := p.chipNs()
	if c == 0 || p.SF < MinSF || p.SF > MaxSF {
		return 0
	}
	return time.Duration(c << p.SF)
}

// LowDataRateOn reports whether the low-data-rate optimisation is in effect:
// as forced, or in automatic mode when the symbol time exceeds 16 ms.
func (p Params) LowDataRateOn() bool {
	switch p.LowDataRateOptimize {
	case LowDataRateOn:
		return true
	case LowDataRateOff:
		return false
	}
	return p.SymbolTime() > lowDataRateSymbol
}

// PayloadSymbols returns n_pl, the number of symbols after the preamble
// (header and payload), for a payload of n bytes:
//
//	8 + max(ceil((8 n - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0)
func (p Params) PayloadSymbols(n int) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if n < 0 || n > MaxPayload {
		return 0, fmt.Errorf("%w: %d bytes not in 0..%d", ErrPayloadSize, n, MaxPayload)
	}
	return p.payloadSymbols(n), nil
}

// payloadSymbols is PayloadSymbols for valid p and n.
func (p Params) payloadSymbols(n int) int {
	num := 8*n - 4*p.SF + 28
	if p.CRC {
		num += 16
	}
	if !p.ExplicitHeader {
		num -= 20
	}
	den := 4 * p.SF
	if p.LowDataRateOn() {
		den = 4 * (p.SF - 2)
	}
	// For num <= 0 the ceiling is <= 0 and max(..., 0) keeps 0 symbols.
	blocks := 0
	if num > 0 {
		blocks = (num + den - 1) / den
	}
	return 8 + blocks*(int(p.CodingRate)+4)
}

// PreambleTime returns Tpre = (PreambleSymbols + 4.25) Tsym, or 0 for
// invalid parameters.
func (p Params) PreambleTime() time.Duration {
	if p.Validate() != nil {
		return 0
	}
	return p.quarterSymbols(4*p.PreambleSymbols + 17)
}

// quarterSymbols returns q/4 symbols, exactly (Tsym is a multiple of 4 ns
// because 2^SF >= 64 and chip times are whole nanoseconds).
func (p Params) quarterSymbols(q int) time.Duration {
	return time.Duration(int64(q) * (p.chipNs() << p.SF) / 4)
}

// TimeOnAir returns the time on air of a frame with an n-byte payload,
// Tpre + n_pl Tsym, exactly to the nanosecond.
func (p Params) TimeOnAir(n int) (time.Duration, error) {
	npl, err := p.PayloadSymbols(n)
	if err != nil {
		return 0, err
	}
	return p.quarterSymbols(4*(p.PreambleSymbols+npl) + 17), nil
}

// Bitrate returns the nominal bit rate (SF - 2 DE) (4 / (4 + CR)) / Tsym
// in bit/s, or 0 for invalid parameters. DE is 1 when the low-data-rate
// optimisation is on: each symbol then carries SF - 2 bits, as the
// time-on-air formula counts them, so the rate is the slope of
// [Params.TimeOnAir] (about 17 % less than SF bits per symbol at SF12).
func (p Params) Bitrate() float64 {
	if p.Validate() != nil {
		return 0
	}
	bits := p.SF
	if p.LowDataRateOn() {
		bits -= 2
	}
	return float64(bits) * 4 / float64(4+int(p.CodingRate)) * p.exactBandwidth() / math.Exp2(float64(p.SF))
}
