package radio

import (
	"fmt"
	"math"
	"strconv"
)

// SensitivityTable selects the datasheet a [Model] takes receiver
// sensitivity from.
type SensitivityTable int

const (
	// SX1272 is the SX1272 datasheet's table at 125 kHz (-124 dBm at SF7
	// to -137 dBm at SF12), as LoRaSim and most LoRa simulators use it.
	// The zero value, for compatibility with earlier results.
	SX1272 SensitivityTable = iota
	// SX1276 is the SX1276/77/78/79 datasheet's table (receiver
	// specifications, band 1, 862-1020 MHz, 125 kHz): -123, -126, -129,
	// -132, -133 and -136 dBm for SF7..SF12 (-118 at SF6), the chip of
	// RNode and most Meshtastic boards.
	SX1276
)

var sensitivity1276 = [MaxSF + 1]float64{6: -118, 7: -123, 8: -126, 9: -129, 10: -132, 11: -133, 12: -136}

// String returns "sx1272" or "sx1276".
func (s SensitivityTable) String() string {
	switch s {
	case SX1272:
		return "sx1272"
	case SX1276:
		return "sx1276"
	}
	return "SensitivityTable(" + strconv.Itoa(int(s)) + ")"
}

// ParseSensitivityTable returns the table named s.
func ParseSensitivityTable(s string) (SensitivityTable, error) {
	switch s {
	case "sx1272":
		return SX1272, nil
	case "sx1276":
		return SX1276, nil
	}
	return 0, fmt.Errorf("%w: sensitivity table %q is not sx1272 or sx1276", ErrInvalidModel, s)
}

// SensitivityDBm returns the receiver sensitivity for p from the model's
// table, scaled by 10 log10(BW / 125 kHz); NaN for invalid parameters.
func (m Model) SensitivityDBm(p Params) float64 {
	if m.Sensitivity != SX1276 {
		return p.SensitivityDBm()
	}
	if p.Validate() != nil {
		return math.NaN()
	}
	return sensitivity1276[p.SF] + 10*math.Log10(p.exactBandwidth()/125000)
}
