package radio

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestPathLoss(t *testing.T) {
	pl := DefaultPathLoss()
	tests := []struct {
		name string
		d    float64
		want float64
	}{
		{"at d0", 40, 127.41},
		{"below d0 clamps", 1, 127.41},
		{"zero distance", 0, 127.41},
		{"10 d0", 400, 127.41 + 20.8},             // 10 n log10(10) = 20.8
		{"100 d0", 4000, 127.41 + 41.6},           // two decades
		{"2 d0", 80, 127.41 + 20.8*math.Log10(2)}, // 6.2614 dB more
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pl.MeanLossDB(tt.d); !near(got, tt.want, 1e-9) {
				t.Errorf("MeanLossDB(%v) = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
	// DistanceM inverts MeanLossDB above d0.
	for _, d := range []float64{40, 41, 100, 1234.5, 1e5} {
		if got := pl.DistanceM(pl.MeanLossDB(d)); !near(got, d, d*1e-12) {
			t.Errorf("DistanceM(MeanLossDB(%v)) = %v", d, got)
		}
	}
	if got := pl.DistanceM(100); got != 40 {
		t.Errorf("DistanceM below PL(d0) = %v, want d0", got)
	}
}

func TestModelValidate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Model)
		field string
	}{
		{"default", func(*Model) {}, ""},
		{"no shadowing", func(m *Model) { m.PathLoss.ShadowSigmaDB = 0 }, ""},
		{"zero d0", func(m *Model) { m.PathLoss.RefDistanceM = 0 }, "PathLoss.RefDistanceM"},
		{"NaN loss", func(m *Model) { m.PathLoss.RefLossDB = math.NaN() }, "PathLoss.RefLossDB"},
		{"negative exponent", func(m *Model) { m.PathLoss.Exponent = -2 }, "PathLoss.Exponent"},
		{"negative sigma", func(m *Model) { m.PathLoss.ShadowSigmaDB = -1 }, "PathLoss.ShadowSigmaDB"},
		{"negative noise figure", func(m *Model) { m.NoiseFigureDB = -1 }, "Model.NoiseFigureDB"},
		{"infinite noise figure", func(m *Model) { m.NoiseFigureDB = math.Inf(1) }, "Model.NoiseFigureDB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultModel()
			tt.mod(&m)
			err := m.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %v, want ErrInvalidModel naming %s", err, tt.field)
			}
		})
	}
}

func TestSensitivityAndNoise(t *testing.T) {
	m := DefaultModel()
	// The datasheet table at 125 kHz (see sensitivity125 and snrFloor).
	want := map[int][2]float64{7: {-124, -7.5}, 8: {-127, -10}, 9: {-130, -12.5}, 10: {-133, -15}, 11: {-135, -17.5}, 12: {-137, -20}}
	// -174 + 10 log10(125000) + 6 = -174 + 50.969 + 6.
	noise125 := -174 + 10*math.Log10(125000) + 6
	if !near(noise125, -117.0309, 1e-4) {
		t.Fatalf("noise floor arithmetic: %v", noise125)
	}
	for sf := 7; sf <= 12; sf++ {
		p := NewParams(sf, 125000, CR45)
		if got := p.SensitivityDBm(); got != want[sf][0] {
			t.Errorf("SF%d sensitivity = %v, want %v", sf, got, want[sf][0])
		}
		if got := p.SNRFloorDB(); got != want[sf][1] {
			t.Errorf("SF%d SNR floor = %v, want %v", sf, got, want[sf][1])
		}
		if got := m.NoiseFloorDBm(p); !near(got, noise125, 1e-12) {
			t.Errorf("noise floor = %v, want %v", got, noise125)
		}
		// Other bandwidths: + 10 log10(BW / 125 kHz), for sensitivity and
		// noise alike; the SNR floor does not move.
		for _, bw := range []int{250000, 500000, 62500, 7800} {
			q := NewParams(sf, bw, CR45)
			shift := 10 * math.Log10(q.exactBandwidth()/125000)
			if got := q.SensitivityDBm(); !near(got, want[sf][0]+shift, 1e-9) {
				t.Errorf("SF%d %d Hz sensitivity = %v, want %v", sf, bw, got, want[sf][0]+shift)
			}
			if got := m.NoiseFloorDBm(q); !near(got, noise125+shift, 1e-9) {
				t.Errorf("SF%d %d Hz noise = %v", sf, bw, got)
			}
			if q.SNRFloorDB() != want[sf][1] {
				t.Errorf("SNR floor moved with bandwidth")
			}
		}
	}
	if got := NewParams(7, 250000, CR45).SensitivityDBm(); !near(got, -120.9897, 1e-4) {
		t.Errorf("SF7 250 kHz = %v, want -120.99 (3.01 dB worse)", got)
	}
	if !math.IsNaN((Params{}).SensitivityDBm()) || !math.IsNaN((Params{}).SNRFloorDB()) {
		t.Error("invalid params give a sensitivity")
	}
}

// The threshold is the stricter of sensitivity and noise + SNR floor. With
// a 6 dB noise figure the SNR floor binds at SF9..SF11.
func TestThreshold(t *testing.T) {
	m := DefaultModel()
	noise := -174 + 10*math.Log10(125000) + 6
	tests := []struct {
		sf   int
		want float64
	}{
		{7, -124},          // noise - 7.5 = -124.53 < -124
		{8, -127},          // -127.03 < -127
		{9, noise - 12.5},  // -129.53 > -130
		{10, noise - 15},   // -132.03 > -133
		{11, noise - 17.5}, // -134.53 > -135
		{12, -137},         // -137.03 < -137
	}
	for _, tt := range tests {
		if got := m.ThresholdDBm(NewParams(tt.sf, 125000, CR45)); !near(got, tt.want, 1e-12) {
			t.Errorf("SF%d threshold = %v, want %v", tt.sf, got, tt.want)
		}
	}
	// A noisier receiver: the SNR floor binds everywhere.
	m.NoiseFigureDB = 10
	if got := m.ThresholdDBm(NewParams(7, 125000, CR45)); !near(got, noise+4-7.5, 1e-12) {
		t.Errorf("NF 10 SF7 threshold = %v", got)
	}
}

func TestMaxRange(t *testing.T) {
	m := DefaultModel()
	tx := Device{TxPowerDBm: 14}
	// SF7: the link affords 14 - (-124) = 138 dB; 40 m x 10^((138 -
	// 127.41) / 20.8) = 40 x 10^0.50913 = 129.1 m.
	p7 := NewParams(7, 125000, CR45)
	if got, want := m.MaxRange(p7, tx, Device{}), 40*math.Pow(10, (138-127.41)/20.8); !near(got, want, 1e-9) || !near(got, 129.1, 0.1) {
		t.Errorf("SF7 range = %v, want %v", got, want)
	}
	// SF12: 151 dB -> 40 x 10^(23.59/20.8) = 40 x 13.619 = 544.7 m.
	if got := m.MaxRange(NewParams(12, 125000, CR45), tx, Device{}); !near(got, 544.7, 0.1) {
		t.Errorf("SF12 range = %v, want 544.7", got)
	}
	// Antenna gains count on both sides: +2 dBi each = +4 dB of budget.
	if got, want := m.MaxRange(p7, Device{TxPowerDBm: 14, GainDBi: 2}, Device{GainDBi: 2}), 40*math.Pow(10, (142-127.41)/20.8); !near(got, want, 1e-9) {
		t.Errorf("range with gains = %v, want %v", got, want)
	}
	prev := 0.0
	for sf := 7; sf <= 12; sf++ {
		p := NewParams(sf, 125000, CR45)
		r := m.MaxRange(p, tx, Device{})
		if r <= prev {
			t.Errorf("SF%d range %v not beyond SF%d's %v", sf, r, sf-1, prev)
		}
		prev = r
		// At the range, the mean power is the threshold; just inside it is
		// reachable, just outside it is not.
		if got := m.RxPowerDBm(tx, Device{}, r, 0); !near(got, m.ThresholdDBm(p), 1e-9) {
			t.Errorf("SF%d: power at max range %v, threshold %v", sf, got, m.ThresholdDBm(p))
		}
		if !m.Reachable(p, tx, Device{}, r*0.999, 0) || m.Reachable(p, tx, Device{}, r*1.001, 0) {
			t.Errorf("SF%d: Reachable disagrees with MaxRange %v", sf, r)
		}
		// 3 dB of shadowing loss shortens the reach.
		if m.Reachable(p, tx, Device{}, r*0.999, 3) {
			t.Errorf("SF%d: shadowing ignored", sf)
		}
	}
	// Too little power to reach even d0.
	if got := m.MaxRange(p7, Device{TxPowerDBm: -20}, Device{}); got != 0 {
		t.Errorf("range at -20 dBm = %v, want 0", got)
	}
	if got := m.MaxRange(Params{}, tx, Device{}); !math.IsNaN(got) {
		t.Errorf("range for invalid params = %v", got)
	}
	if got := m.SNRDB(p7, -120); !near(got, -120-(-174+10*math.Log10(125000)+6), 1e-12) {
		t.Errorf("SNRDB = %v", got)
	}
}

func TestLinkShadowing(t *testing.T) {
	s := NewLinkShadowing(rand.New(rand.NewPCG(1, 2)), 3.57)
	same := NewLinkShadowing(rand.New(rand.NewPCG(1, 2)), 3.57)
	other := NewLinkShadowing(rand.New(rand.NewPCG(3, 4)), 3.57)
	const n = 400 // 79,800 pairs
	var sum, sum2 float64
	var differ, pairs int
	maxAbs := 0.0
	for a := range NodeID(n) {
		if s.DB(a, a) != 0 {
			t.Fatal("a node shadows itself")
		}
		for b := a + 1; b < n; b++ {
			x := s.DB(a, b)
			if x != s.DB(b, a) {
				t.Fatalf("DB(%d,%d) = %v, DB(%d,%d) = %v: not symmetric", a, b, x, b, a, s.DB(b, a))
			}
			if x != same.DB(a, b) {
				t.Fatal("same seed, different shadowing")
			}
			if x != other.DB(a, b) {
				differ++
			}
			sum += x
			sum2 += x * x
			maxAbs = max(maxAbs, math.Abs(x))
			pairs++
		}
	}
	mean := sum / float64(pairs)
	sd := math.Sqrt(sum2/float64(pairs) - mean*mean)
	// Standard error of the mean: 3.57 / sqrt(79800) = 0.013 dB.
	if math.Abs(mean) > 0.06 || math.Abs(sd-3.57) > 0.06 {
		t.Errorf("shadowing mean %v, sd %v; want 0 and 3.57", mean, sd)
	}
	if maxAbs > s.MaxDB() || s.MaxDB() != 4*3.57 {
		t.Errorf("|shadowing| reaches %v, bound %v", maxAbs, s.MaxDB())
	}
	if differ < pairs*99/100 {
		t.Errorf("another seed changed only %d of %d links", differ, pairs)
	}
	// Without sigma there is no shadowing, and no generator is needed.
	if z := NewLinkShadowing(nil, 0); z.DB(1, 2) != 0 || z.MaxDB() != 0 {
		t.Error("zero sigma shadows")
	}
}
