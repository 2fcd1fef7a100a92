package radio

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestPathLossModels checks each model against values worked out by hand
// from the published formulas (see PathLossKind).
func TestPathLossModels(t *testing.T) {
	hata := func(env Environment, f float64) PathLoss {
		return PathLoss{Kind: OkumuraHata, Environment: env, FrequencyMHz: f}
	}
	tests := []struct {
		name   string
		pl     PathLoss
		d      float64
		h1, h2 float64
		want   float64
	}{
		// Friis at 868 MHz, 1 km: 32.45 + 20 log10(868) = 91.22 dB.
		{"free space 868 MHz 1 km", PathLoss{Kind: FreeSpace, FrequencyMHz: 868}, 1000, 2, 2, 91.2182},
		{"free space 10 km is +20 dB", PathLoss{Kind: FreeSpace, FrequencyMHz: 868}, 10000, 2, 2, 111.2182},
		// Two-ray beyond the crossover (3.64 km for 10 m antennas at
		// 868.1 MHz): 40 log10(10^4) - 20 log10(100) = 120 dB.
		{"two-ray 10 km 10 m masts", PathLoss{Kind: TwoRayGround}, 10000, 10, 10, 120},
		// Below the crossover two-ray is free space.
		{"two-ray below crossover", PathLoss{Kind: TwoRayGround, FrequencyMHz: 868}, 1000, 10, 10, 91.2182},
		// Hata's textbook case: 900 MHz, 30 m base, 1.5 m mobile, 1 km,
		// small/medium city: 126.40 dB (Rappaport example: 126.4 dB).
		{"hata urban 900 MHz 1 km", hata(EnvUrban, 900), 1000, 30, 1.5, 126.4033},
		{"hata urban 900 MHz 10 km", hata(EnvUrban, 900), 10000, 1.5, 30, 161.6281},
		{"hata large city", hata(EnvLargeCity, 900), 1000, 30, 1.5, 126.4201},
		{"hata suburban", hata(EnvSuburban, 900), 1000, 30, 1.5, 116.4607},
		{"hata rural", hata(EnvRural, 900), 1000, 30, 1.5, 97.8969},
		// COST-231 at 1800 MHz, same geometry: 136.20 dB, +3 metropolitan.
		{"cost231 medium city", PathLoss{Kind: COST231Hata, FrequencyMHz: 1800}, 1000, 30, 1.5, 136.1969},
		{"cost231 metropolitan", PathLoss{Kind: COST231Hata, Environment: EnvLargeCity, FrequencyMHz: 1800}, 1000, 30, 1.5, 139.1969},
		// Two 2 m antennas in a suburb at 868.1 MHz: 131.13 dB at 1 km.
		{"hata suburban mesh", hata(EnvSuburban, 0), 1000, 0, 0, 131.1334},
		// At short range every model is at least free space.
		{"hata clamps to free space", hata(EnvRural, 868), 5, 2, 2, freeSpaceDB(5, 868)},
		{"log-distance ignores heights", DefaultPathLoss(), 400, 30, 1, 127.41 + 20.8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.pl.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.pl.LossDB(tt.d, tt.h1, tt.h2); !near(got, tt.want, 1e-3) {
				t.Errorf("LossDB(%v, %v, %v) = %.4f, want %.4f", tt.d, tt.h1, tt.h2, got, tt.want)
			}
			if a, b := tt.pl.LossDB(tt.d, tt.h1, tt.h2), tt.pl.LossDB(tt.d, tt.h2, tt.h1); a != b {
				t.Errorf("not symmetric: %v vs %v", a, b)
			}
		})
	}
}

// TestPathLossMonotone checks what the medium's range bounds rely on: the
// loss never falls with distance nor rises with an antenna's height
// (beyond 8 m, below which Hata's formula is under free space anyway), and
// DistanceAtLossM inverts LossDB.
func TestPathLossMonotone(t *testing.T) {
	for kind := LogDistance; kind <= COST231Hata; kind++ {
		for env := EnvUrban; env <= EnvRural; env++ {
			pl := DefaultPathLoss()
			pl.Kind, pl.Environment = kind, env
			name := fmt.Sprintf("%v/%v", kind, env)
			for _, h := range []float64{0.5, 1, 2, 5, 10, 30} {
				prev := math.Inf(-1)
				for d := 8.0; d < 1e6; d *= 1.3 {
					l := pl.LossDB(d, h, 2)
					if l < prev {
						t.Fatalf("%s: loss falls with distance at %v m, h %v", name, d, h)
					}
					prev = l
					if l2 := pl.LossDB(d, h*2, 2); l2 > l+1e-9 {
						t.Fatalf("%s: loss rises with height at %v m: %v -> %v", name, d, l, l2)
					}
					if kind != LogDistance || d > pl.RefDistanceM {
						if got := pl.DistanceAtLossM(l, h, 2); !near(got, d, d*1e-6) {
							t.Fatalf("%s: DistanceAtLossM(LossDB(%v)) = %v", name, d, got)
						}
					}
				}
			}
		}
	}
}

// TestMaxRangeModels: the ranges the docs quote, at 14 dBm, 0 dBi, 2 m
// antennas, no shadowing. The suburban Hata model gives kilometres at SF12,
// the log-distance default hundreds of metres.
func TestMaxRangeModels(t *testing.T) {
	dev := Device{TxPowerDBm: 14, HeightM: 2}
	for _, tt := range []struct {
		kind   PathLossKind
		env    Environment
		sf     int
		lo, hi float64
	}{
		{LogDistance, 0, 12, 500, 600},
		{OkumuraHata, EnvSuburban, 12, 2500, 3500},
		{OkumuraHata, EnvSuburban, 7, 1000, 1800},
		{OkumuraHata, EnvRural, 12, 6000, 10000},
		{OkumuraHata, EnvUrban, 12, 1000, 2000},
	} {
		m := DefaultModel()
		m.PathLoss.Kind, m.PathLoss.Environment = tt.kind, tt.env
		r := m.MaxRange(NewParams(tt.sf, 125000, CR45), dev, dev)
		if r < tt.lo || r > tt.hi {
			t.Errorf("%v/%v SF%d: range %.0f m, want %v..%v", tt.kind, tt.env, tt.sf, r, tt.lo, tt.hi)
		}
	}
}

func TestPathLossModelValidate(t *testing.T) {
	for _, tt := range []struct {
		pl    PathLoss
		field string
	}{
		{PathLoss{Kind: 9}, "PathLoss.Kind"},
		{PathLoss{Kind: FreeSpace, Environment: 7}, "PathLoss.Environment"},
		{PathLoss{Kind: FreeSpace, FrequencyMHz: -1}, "PathLoss.FrequencyMHz"},
		{PathLoss{Kind: OkumuraHata, FrequencyMHz: 2400}, "150-1500 MHz"},
		{PathLoss{Kind: COST231Hata, FrequencyMHz: 2400}, "2000 MHz"},
		{PathLoss{Kind: TwoRayGround, DefaultHeightM: math.NaN()}, "PathLoss.DefaultHeightM"},
		{PathLoss{Kind: TwoRayGround, ShadowSigmaDB: -1}, "PathLoss.ShadowSigmaDB"},
	} {
		err := tt.pl.Validate()
		if !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%+v: %v, want ErrInvalidModel naming %s", tt.pl, err, tt.field)
		}
	}
	if _, err := ParsePathLossKind("okumura"); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("ParsePathLossKind(okumura) = %v", err)
	}
	for k := LogDistance; k <= COST231Hata; k++ {
		if got, err := ParsePathLossKind(k.String()); err != nil || got != k {
			t.Errorf("round trip %v: %v %v", k, got, err)
		}
	}
	if (Device{HeightM: -1}).Validate() == nil {
		t.Error("negative height accepted")
	}
}

// TestMediumHeights: a higher antenna reaches further in the medium, and
// the medium's reach lists agree with RxPowerDBm.
func TestMediumHeights(t *testing.T) {
	m := DefaultModel()
	m.PathLoss = PathLoss{Kind: OkumuraHata, Environment: EnvSuburban}
	p := NewParams(12, 125000, CR45)
	low := Device{TxPowerDBm: 14, HeightM: 2}
	high := Device{TxPowerDBm: 14, HeightM: 15}
	r := m.MaxRange(p, low, low)
	nodes := []Node{{X: 0, Device: high}, {X: r * 1.5, Device: low}, {X: -r * 1.5, Device: low}}
	med, err := NewMedium(nodes, nil, WithModel(m))
	if err != nil {
		t.Fatal(err)
	}
	nb, _ := med.Neighbours(0, p)
	if len(nb) != 2 {
		t.Errorf("15 m mast reaches %v, want both 2 m nodes at 1.5x the 2 m range", nb)
	}
	nb, _ = med.Neighbours(1, p)
	if len(nb) != 1 || nb[0] != 0 {
		t.Errorf("2 m node reaches %v, want only the mast", nb)
	}
}

func TestSensitivityTables(t *testing.T) {
	want := map[int][2]float64{7: {-124, -123}, 8: {-127, -126}, 9: {-130, -129}, 10: {-133, -132}, 11: {-135, -133}, 12: {-137, -136}}
	for sf, w := range want {
		p := NewParams(sf, 125000, CR45)
		for i, tab := range []SensitivityTable{SX1272, SX1276} {
			m := DefaultModel()
			m.Sensitivity = tab
			if got := m.SensitivityDBm(p); got != w[i] {
				t.Errorf("%v SF%d: %v dBm, want %v", tab, sf, got, w[i])
			}
		}
	}
	m := DefaultModel()
	m.Sensitivity = SX1276
	// 250 kHz: 3 dB less sensitive.
	if got := m.SensitivityDBm(NewParams(12, 250000, CR45)); !near(got, -136+3.0103, 1e-3) {
		t.Errorf("SX1276 SF12/250: %v", got)
	}
	// SX1276's SF12 is 1 dB less sensitive: a shorter range.
	if a, b := DefaultModel().MaxRange(NewParams(12, 125000, CR45), Device{TxPowerDBm: 14}, Device{TxPowerDBm: 14}),
		m.MaxRange(NewParams(12, 125000, CR45), Device{TxPowerDBm: 14}, Device{TxPowerDBm: 14}); !(b < a) {
		t.Errorf("SX1276 range %v not below SX1272's %v", b, a)
	}
	if _, err := ParseSensitivityTable("sx1262"); !errors.Is(err, ErrInvalidModel) {
		t.Error("sx1262 accepted")
	}
	m.Sensitivity = 5
	if m.Validate() == nil {
		t.Error("table 5 accepted")
	}
}
